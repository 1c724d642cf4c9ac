"""Hand-designed image features for the classical (non-neural) classifiers."""
