"""Convolution forward and backward in numpy, with the course assignment's signatures.

Layout is channels-last as in the assignment: activations (m, n_H, n_W, n_C), filters
(f, f, n_C_prev, n_C), biases (1, 1, 1, n_C). Like every deep-learning framework, the
"convolution" here is cross-correlation: the filter is not flipped. :func:`convolve2d` offers
both that and the textbook convolution for a single 2-D image.

The course writes conv_forward as four nested loops (example, row, column, filter) around
``conv_single_step``; here the loops over positions become one strided window view, so each
output is still ``sum(a_slice_prev * W[..., c]) + b[..., c]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._windows import fold, windows
from .sizes import _check_int, conv_output_size

_CONVOLVE_MODES = ("cross_correlation", "convolution")


def zero_pad(X: np.ndarray, pad: int) -> np.ndarray:
    """Pad the height and width of a batch (m, n_H, n_W, n_C) with ``pad`` zeros per side."""
    _check_int("pad", pad, 0)
    if X.ndim != 4:
        raise ValueError(f"X must be 4-D (m, n_H, n_W, n_C), got shape {X.shape}")
    return np.pad(X, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="constant")


def conv_single_step(a_slice_prev: np.ndarray, W: np.ndarray, b: np.ndarray | float) -> float:
    """One filter applied at one position: sum(a_slice_prev * W) + b.

    Args:
        a_slice_prev: input slice (f, f, n_C_prev).
        W: one filter, same shape as the slice.
        b: the filter's bias, any shape holding one value (the assignment uses (1, 1, 1)).
    """
    if a_slice_prev.shape != W.shape:
        raise ValueError(f"slice shape {a_slice_prev.shape} != filter shape {W.shape}")
    return float(np.sum(a_slice_prev * W) + np.asarray(b).item())


def _check_conv_args(A_prev: np.ndarray, W: np.ndarray, b: np.ndarray,
                     hparameters: dict[str, Any]) -> tuple[int, int]:
    """Validate conv_forward's inputs; return (stride, pad)."""
    if A_prev.ndim != 4:
        raise ValueError(f"A_prev must be 4-D (m, n_H, n_W, n_C), got shape {A_prev.shape}")
    if W.ndim != 4 or W.shape[0] != W.shape[1]:
        raise ValueError(f"W must be (f, f, n_C_prev, n_C) with a square filter, got {W.shape}")
    if W.shape[2] != A_prev.shape[3]:
        raise ValueError(f"W expects {W.shape[2]} input channels but A_prev has "
                         f"{A_prev.shape[3]}")
    if b.shape != (1, 1, 1, W.shape[3]):
        raise ValueError(f"b must have shape (1, 1, 1, {W.shape[3]}), got {b.shape}")
    missing = {"stride", "pad"} - set(hparameters)
    if missing:
        raise ValueError(f"hparameters lacks {sorted(missing)}")
    return hparameters["stride"], hparameters["pad"]


def conv_forward(A_prev: np.ndarray, W: np.ndarray, b: np.ndarray,
                 hparameters: dict[str, Any]) -> tuple[np.ndarray, tuple]:
    """Convolution layer forward pass (cross-correlation, as in deep learning).

    Args:
        A_prev: input activations (m, n_H_prev, n_W_prev, n_C_prev).
        W: filters (f, f, n_C_prev, n_C).
        b: biases (1, 1, 1, n_C).
        hparameters: ``{"stride": s, "pad": p}``.

    Returns:
        Z of shape (m, n_H, n_W, n_C) with n_H = floor((n_H_prev + 2p − f) / s) + 1, and the
        cache ``(A_prev, W, b, hparameters)`` for :func:`conv_backward`.

    Raises:
        ValueError: on inconsistent shapes or a filter larger than the padded input.
    """
    stride, pad = _check_conv_args(A_prev, W, b, hparameters)
    f = W.shape[0]
    n_H = conv_output_size(A_prev.shape[1], f, pad, stride)
    n_W = conv_output_size(A_prev.shape[2], f, pad, stride)
    a_slices = windows(zero_pad(A_prev, pad), f, f, stride)
    assert a_slices.shape[1:3] == (n_H, n_W)
    # Z[m, h, w, c] = sum_{i, j, k} a_slice[m, h, w, k, i, j] * W[i, j, k, c] + b[c]
    Z = np.einsum("mhwkij,ijkc->mhwc", a_slices, W) + b
    return Z, (A_prev, W, b, hparameters)


def conv_backward(dZ: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Convolution layer backward pass.

    Args:
        dZ: gradient of the cost with respect to Z, shape (m, n_H, n_W, n_C).
        cache: the cache returned by :func:`conv_forward`.

    Returns:
        (dA_prev, dW, db) with the shapes of A_prev, W and b. Input pixels that no window
        reaches (cut off by the floor in the output size) get zero gradient.
    """
    A_prev, W, b, hparameters = cache
    stride, pad = hparameters["stride"], hparameters["pad"]
    f = W.shape[0]
    A_prev_pad = zero_pad(A_prev, pad)
    a_slices = windows(A_prev_pad, f, f, stride)
    if dZ.shape != a_slices.shape[:3] + (W.shape[3],):
        raise ValueError(f"dZ has shape {dZ.shape}, expected "
                         f"{a_slices.shape[:3] + (W.shape[3],)}")
    # The course's da_prev_pad[slice] += W[..., c] * dZ[m, h, w, c], for all windows at once.
    d_slices = np.einsum("ijkc,mhwc->mhwkij", W, dZ)
    dA_prev_pad = fold(d_slices, A_prev_pad.shape, stride)
    n_H_prev, n_W_prev = A_prev.shape[1:3]
    dA_prev = dA_prev_pad[:, pad:pad + n_H_prev, pad:pad + n_W_prev, :]
    dW = np.einsum("mhwkij,mhwc->ijkc", a_slices, dZ)
    db = dZ.sum(axis=(0, 1, 2)).reshape(b.shape)
    return dA_prev, dW, db


def convolve2d(image: np.ndarray, kernel: np.ndarray, mode: str = "cross_correlation",
               stride: int = 1, pad: int = 0) -> np.ndarray:
    """Slide a 2-D kernel over a 2-D image ("valid" after zero padding).

    Args:
        image: (H, W) array.
        kernel: (kh, kw) array; need not be square.
        mode: ``"cross_correlation"`` (what CNNs compute and call convolution) or
            ``"convolution"`` (the textbook operation: the kernel is flipped vertically and
            horizontally first).
        stride: step between positions.
        pad: zeros added on each side.

    Returns:
        Array of shape (floor((H + 2p − kh) / s) + 1, floor((W + 2p − kw) / s) + 1).
    """
    if mode not in _CONVOLVE_MODES:
        raise ValueError(f"mode must be one of {_CONVOLVE_MODES}, got {mode!r}")
    if image.ndim != 2 or kernel.ndim != 2:
        raise ValueError(f"image and kernel must be 2-D, got {image.shape} and {kernel.shape}")
    kh, kw = kernel.shape
    n_H = conv_output_size(image.shape[0], kh, pad, stride)
    n_W = conv_output_size(image.shape[1], kw, pad, stride)
    if mode == "convolution":
        kernel = kernel[::-1, ::-1]
    padded = zero_pad(image[None, :, :, None], pad)
    patches = windows(padded, kh, kw, stride)[0, :, :, 0]
    assert patches.shape[:2] == (n_H, n_W)
    return np.einsum("hwij,ij->hw", patches, kernel)
