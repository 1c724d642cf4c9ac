"""What measures a model, used during training, after it and by scripts: classification metrics,
adversarial attacks, the Fréchet distance, sample quality, and loading a trained classifier as a
judge. The engine (the training machinery) knows none of it."""
