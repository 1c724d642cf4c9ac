"""The shared torch machinery: device setup, optimisers, the training loop, checkpoints, metrics."""
