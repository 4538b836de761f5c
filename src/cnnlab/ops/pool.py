"""Max and average pooling forward and backward, with the course assignment's signatures.

Pooling has hyper-parameters f and stride but no padding and no learnable parameters; it
works on each channel independently, so n_C is unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._windows import fold, windows
from .sizes import conv_output_size

_POOL_MODES = ("max", "average")


def _check_pool_args(A_prev: np.ndarray, hparameters: dict[str, Any], mode: str) -> tuple[int, int]:
    """Validate pool_forward's inputs; return (f, stride)."""
    if mode not in _POOL_MODES:
        raise ValueError(f"mode must be one of {_POOL_MODES}, got {mode!r}")
    if A_prev.ndim != 4:
        raise ValueError(f"A_prev must be 4-D (m, n_H, n_W, n_C), got shape {A_prev.shape}")
    missing = {"f", "stride"} - set(hparameters)
    if missing:
        raise ValueError(f"hparameters lacks {sorted(missing)}")
    f, stride = hparameters["f"], hparameters["stride"]
    for n in A_prev.shape[1:3]:
        conv_output_size(n, f, 0, stride)  # raises if the window does not fit
    return f, stride


def pool_forward(A_prev: np.ndarray, hparameters: dict[str, Any],
                 mode: str = "max") -> tuple[np.ndarray, tuple]:
    """Pooling layer forward pass.

    Args:
        A_prev: input (m, n_H_prev, n_W_prev, n_C).
        hparameters: ``{"f": window size, "stride": s}``.
        mode: ``"max"`` or ``"average"``.

    Returns:
        A of shape (m, floor((n_H_prev − f) / s) + 1, floor((n_W_prev − f) / s) + 1, n_C) and
        the cache ``(A_prev, hparameters)``.

    Raises:
        ValueError: on an unknown mode, a missing hyper-parameter or a window larger than the
            input.
    """
    f, stride = _check_pool_args(A_prev, hparameters, mode)
    a_slices = windows(A_prev, f, f, stride)
    reduce = np.max if mode == "max" else np.mean
    return reduce(a_slices, axis=(-2, -1)), (A_prev, hparameters)


def create_mask_from_window(x: np.ndarray) -> np.ndarray:
    """Boolean mask of the maximum of an f×f window (or of each window in (..., f, f)).

    The course marks ``x == np.max(x)``; with ties that sends the gradient to every tied
    entry and so multiplies it (common after a ReLU, where whole windows are 0). Here only the
    first maximum in row-major order is marked, which is the gradient of the max actually
    taken, and what PyTorch does.
    """
    f_h, f_w = x.shape[-2:]
    flat = x.reshape(x.shape[:-2] + (f_h * f_w,))
    first = np.argmax(flat, axis=-1)[..., None]
    return (np.arange(f_h * f_w) == first).reshape(x.shape)


def distribute_value(dz: np.ndarray | float, shape: tuple[int, int]) -> np.ndarray:
    """Spread the gradient of an average evenly over a window of ``shape`` (n_H, n_W).

    ``dz`` may be a scalar (as in the course) or an array, giving shape dz.shape + shape.
    """
    n_H, n_W = shape
    share = np.asarray(dz) / (n_H * n_W)
    return np.broadcast_to(share[..., None, None], share.shape + (n_H, n_W))


def pool_backward(dA: np.ndarray, cache: tuple, mode: str = "max") -> np.ndarray:
    """Pooling layer backward pass.

    Args:
        dA: gradient of the cost with respect to the pooling output A.
        cache: the cache returned by :func:`pool_forward`.
        mode: ``"max"`` or ``"average"``; must match the forward pass.

    Returns:
        dA_prev with the shape of A_prev. Overlapping windows (stride < f) add up.
    """
    A_prev, hparameters = cache
    f, stride = _check_pool_args(A_prev, hparameters, mode)
    a_slices = windows(A_prev, f, f, stride)
    if dA.shape != a_slices.shape[:4]:
        raise ValueError(f"dA has shape {dA.shape}, expected {a_slices.shape[:4]}")
    if mode == "max":
        d_slices = create_mask_from_window(a_slices) * dA[..., None, None]
    else:
        d_slices = distribute_value(dA, (f, f))
    return fold(d_slices, A_prev.shape, stride)
