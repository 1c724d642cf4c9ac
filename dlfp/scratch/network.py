"""A network as a sequence of layers, and the study's MNIST network built from ``cfg.model`` fields."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dlfp.scratch.layers import Flatten, Layer, Linear, PatchEmbedding, ReLU


class Network:
    """Layers applied in order; backward runs them in reverse.

    Parameter names are ``<layer name>.<param>`` and equal the ``state_dict`` keys of the PyTorch
    model with the same architecture, so weights move between the two by name. A layer without a
    name is named by its position, as ``nn.Sequential`` names its children; two layers of one name
    are refused (they would share momentum buffers and hide each other in ``state_dict``).
    """

    def __init__(self, layers: Sequence[Layer], dtype: np.dtype, arch: dict | None = None) -> None:
        self.layers = list(layers)
        for index, layer in enumerate(self.layers):
            if not layer.name:
                layer.name = str(index)
        names = [layer.name for layer in self.layers]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"layer names must be unique, but {repeated} name more than one layer")
        self.dtype = np.dtype(dtype)
        self.arch = dict(arch or {})  # the constructor arguments, so a twin can be built from them

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Logits for a batch; the input is converted to the network's dtype (no copy if it already is)."""
        x = np.asarray(x, dtype=self.dtype)
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_logits: np.ndarray, input_grad: bool = False) -> np.ndarray | None:
        """Fill every layer's ``grads``; return d(loss)/d(input) only when asked (training needs none)."""
        grad = grad_logits
        for i in range(len(self.layers) - 1, -1, -1):
            grad = self.layers[i].backward(grad, input_grad=input_grad or i > 0)
        return grad

    def parameters(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(name, value, gradient) for every parameter, in layer order."""
        return [
            (f"{layer.name}.{key}", value, layer.grads[key])
            for layer in self.layers
            for key, value in layer.params.items()
        ]

    def state_dict(self) -> dict[str, np.ndarray]:
        return {name: value.copy() for name, value, _ in self.parameters()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy values in place (the arrays keep their identity, so an optimizer holding them stays valid)."""
        own = {name: value for name, value, _ in self.parameters()}
        if set(state) != set(own):
            raise KeyError(f"state keys {sorted(state)} differ from the network's {sorted(own)}")
        for name, value in own.items():
            if state[name].shape != value.shape:
                raise ValueError(f"{name}: shape {state[name].shape} != {value.shape}")
            value[...] = state[name]

    def __repr__(self) -> str:
        inner = "\n".join(f"  {layer.name or '-'}: {layer!r}" for layer in self.layers)
        return f"Network(dtype={self.dtype}, [\n{inner}\n])"


def build_patch_mlp(
    in_channels: int = 1,
    image_size: int = 28,
    patch_size: int = 4,
    embed_channels: int = 8,
    hidden: Sequence[int] = (256,),
    num_classes: int = 10,
    *,
    rng: np.random.Generator,
    dtype: np.dtype = np.float32,
) -> Network:
    """The NumPy counterpart of ``dlfp.models.patch_mlp.PatchMLP``, same arguments, same layer names.

    Patch embedding -> flatten -> [Linear, ReLU] per hidden width -> Linear. Layers are initialised
    in PyTorch's order (embedding, then each Linear), each from ``rng``. The defaults are
    model=patch_mlp's, kept because tests, the twin check and scripts build it without config.
    """
    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
    embed = PatchEmbedding(in_channels, embed_channels, patch_size, rng=rng, dtype=dtype)
    embed.name = "embed"
    layers: list[Layer] = [embed, Flatten()]
    grid = image_size // patch_size
    widths = [embed_channels * grid * grid, *hidden]
    index = 0  # position in PatchMLP.classifier (an nn.Sequential of Linear, ReLU, ..., Linear)
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        linear, relu = Linear(fan_in, fan_out, rng=rng, dtype=dtype), ReLU()
        linear.name, relu.name = f"classifier.{index}", f"classifier.{index + 1}"
        layers += [linear, relu]
        index += 2
    out = Linear(widths[-1], num_classes, rng=rng, dtype=dtype)
    out.name = f"classifier.{index}"
    layers.append(out)
    arch = dict(in_channels=in_channels, image_size=image_size, patch_size=patch_size,
                embed_channels=embed_channels, hidden=list(hidden), num_classes=num_classes)
    return Network(layers, dtype, arch)
