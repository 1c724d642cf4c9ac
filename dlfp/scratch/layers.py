"""Layers with hand-written forward and backward passes.

A layer's ``forward(x)`` keeps what its ``backward`` needs (the input, a mask) in arrays of its own,
never a view of ``x``: the caller may reuse or change its array after ``forward``. ``backward(grad_out)``
writes the parameter gradients into ``grads`` (overwriting, not accumulating: one backward per
forward) and returns the gradient with respect to the input. Parameters and gradients are arrays
named like the matching PyTorch module's (``weight``, ``bias``, same shapes), so weights copy between
the two by name.

All work is whole-array NumPy: matrix products go to BLAS, the patch embedding is reshapes and one
matrix product, nothing loops over examples or pixels.
"""

from __future__ import annotations

import math

import numpy as np


def torch_default_uniform(
    rng: np.random.Generator, fan_in: int, shape: tuple[int, ...], dtype: np.dtype
) -> np.ndarray:
    """PyTorch's default init of Linear/Conv2d weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    (``kaiming_uniform_(a=sqrt(5))`` gives bound gain*sqrt(3/fan_in) with gain sqrt(2/(1+5)), which is
    1/sqrt(fan_in); the bias uses the same bound.) Drawn in float64 and rounded to ``dtype``, so the
    float32 and float64 networks of one seed start from the same weights up to rounding.
    """
    bound = 1.0 / math.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


class Layer:
    """Base class: ``params`` and ``grads`` share keys and shapes; parameter-free layers leave them empty."""

    name: str = ""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad_out: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Fill ``grads``; return d(loss)/d(input), or None when ``input_grad`` is False (first layer)."""
        raise NotImplementedError

    def _new_params(self, **params: np.ndarray) -> None:
        self.params = params
        self.grads = {k: np.zeros_like(v) for k, v in params.items()}

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}{tuple(v.shape)}" for k, v in self.params.items())
        return f"{type(self).__name__}({shapes})"


class PatchEmbedding(Layer):
    """(N, C, H, W) -> (N, O, H/P, W/P): each non-overlapping P x P patch times one shared matrix.

    Equal to ``nn.Conv2d(C, O, kernel_size=P, stride=P)``: the image is viewed as
    (N, C, H/P, P, W/P, P), rearranged into one row per patch (C, P, P order, like a conv kernel),
    multiplied by the (O, C*P*P) kernel matrix, and put back in (N, O, H/P, W/P) order so that a
    following flatten sees the (C, H, W) order PyTorch's ``flatten(1)`` produces.
    """

    def __init__(self, in_channels: int, out_channels: int, patch_size: int, *,
                 rng: np.random.Generator, dtype: np.dtype = np.float32) -> None:
        super().__init__()
        fan_in = in_channels * patch_size * patch_size
        self.patch_size = patch_size
        self._new_params(
            weight=torch_default_uniform(rng, fan_in, (out_channels, in_channels, patch_size, patch_size),
                                         dtype),
            bias=torch_default_uniform(rng, fan_in, (out_channels,), dtype),
        )

    def forward(self, x: np.ndarray) -> np.ndarray:
        n, c, h, w = x.shape
        p = self.patch_size
        if h % p or w % p:
            raise ValueError(f"image {h}x{w} is not a whole number of {p}x{p} patches")
        gh, gw = h // p, w // p
        weight = self.params["weight"]
        patches = patch_rows(x, p)  # (N*gh*gw, C*P*P)
        out = patches @ weight.reshape(len(weight), -1).T  # times the (O, C*P*P) kernel matrix
        out += self.params["bias"]
        self._patches, self._in_shape = patches, x.shape
        return out.reshape(n, gh * gw, -1).transpose(0, 2, 1).reshape(n, -1, gh, gw)

    def backward(self, grad_out: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        n, o, gh, gw = grad_out.shape
        # (O, N*gh*gw): each (n, o) block of gh*gw values stays contiguous, so this copy is cheap
        g = grad_out.reshape(n, o, gh * gw).transpose(1, 0, 2).reshape(o, n * gh * gw)
        weight = self.params["weight"]
        np.matmul(g, self._patches, out=self.grads["weight"].reshape(o, -1))
        g.sum(axis=1, out=self.grads["bias"])
        if not input_grad:
            return None
        _, c, h, w = self._in_shape
        p = self.patch_size
        d_patches = g.T @ weight.reshape(o, -1)
        return d_patches.reshape(n, gh, gw, c, p, p).transpose(0, 3, 1, 4, 2, 5).reshape(n, c, h, w)


def patch_rows(x: np.ndarray, p: int) -> np.ndarray:
    """(N, C, H, W) -> (N*(H/p)*(W/p), C*p*p): one row per patch, in (c, ph, pw) order, like a conv kernel.

    This is the forward pass's one sizeable copy, and always a copy (the layer keeps it for its
    backward): with one patch per image the plain reshape alone would be a view of ``x``, which the
    caller may change after the forward. A patch's p pixels along a row are neighbours in
    memory, so when they span 8 or 16 bytes (p=4 in float32: 16) they are moved as one float64 or
    complex128 item: NumPy's strided copy then moves p times fewer items, several times faster than
    moving single float32 pixels. Otherwise the plain reshape copy.
    """
    n, c, h, w = x.shape
    gh, gw = h // p, w // p
    unit = {8: np.float64, 16: np.complex128}.get(p * x.itemsize)
    if unit is None or not x.flags.c_contiguous:
        rows = x.reshape(n, c, gh, p, gw, p).transpose(0, 2, 4, 1, 3, 5).copy()  # C order: reshape is free
        return rows.reshape(n * gh * gw, c * p * p)
    pixel_rows = x.view(unit).reshape(n, c, gh, p, gw)  # one item = p pixels of one patch row
    out = np.empty((n, gh, gw, c, p), dtype=unit)
    np.copyto(out, pixel_rows.transpose(0, 2, 4, 1, 3))
    return out.view(x.dtype).reshape(n * gh * gw, c * p * p)


class Flatten(Layer):
    """(N, ...) -> (N, prod(...)) in C order, like ``torch.flatten(x, 1)``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._in_shape = x.shape
        return x.reshape(len(x), -1)

    def backward(self, grad_out: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        return grad_out.reshape(self._in_shape) if input_grad else None


class Linear(Layer):
    """y = x W^T + b with W of shape (out, in), like ``nn.Linear``."""

    def __init__(self, in_features: int, out_features: int, *,
                 rng: np.random.Generator, dtype: np.dtype = np.float32) -> None:
        super().__init__()
        self._new_params(
            weight=torch_default_uniform(rng, in_features, (out_features, in_features), dtype),
            bias=torch_default_uniform(rng, in_features, (out_features,), dtype),
        )

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2:
            raise ValueError(f"Linear expects (batch, features), got shape {x.shape}")
        self._x = x.copy()  # the weight gradient's input, safe from the caller's later changes
        out = x @ self.params["weight"].T  # BLAS reads the transpose in place, no copy
        out += self.params["bias"]
        return out

    def backward(self, grad_out: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        np.matmul(grad_out.T, self._x, out=self.grads["weight"])
        grad_out.sum(axis=0, out=self.grads["bias"])
        return grad_out @ self.params["weight"] if input_grad else None


class ReLU(Layer):
    """max(x, 0); the gradient passes where the output is positive (0 at the kink, like PyTorch)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = np.maximum(x, 0)
        self._active = out > 0
        return out

    def backward(self, grad_out: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        return grad_out * self._active if input_grad else None
