"""The MNIST network written from scratch in NumPy: layers with hand-written backward passes,
softmax cross-entropy, SGD, a finite-difference gradient check, and a PyTorch twin that proves the
two implementations compute the same thing."""

from dlfp.scratch.layers import Flatten, Layer, Linear, PatchEmbedding, ReLU
from dlfp.scratch.loss import SoftmaxCrossEntropy
from dlfp.scratch.network import Network, build_patch_mlp
from dlfp.scratch.sgd import SGD

__all__ = [
    "Flatten", "Layer", "Linear", "Network", "PatchEmbedding", "ReLU", "SGD", "SoftmaxCrossEntropy",
    "build_patch_mlp",
]
