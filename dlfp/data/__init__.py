"""Datasets as in-memory tensors, and the loader that batches them."""

from dlfp.data.images import ImageData, Split

__all__ = ["ImageData", "Split"]
