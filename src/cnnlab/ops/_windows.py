"""Strided f×f windows over NHWC arrays and their adjoint (scatter-add back).

``windows(A, fh, fw, s)[m, h, w, c, i, j] == A[m, h*s + i, w*s + j, c]``: exactly the
``a_slice_prev`` the course's four nested loops cut out at output position (h, w), as a
read-only view. ``fold`` is its transpose: it adds every window's gradient back onto the
input positions it was cut from, which is where overlapping windows (stride < f) accumulate.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def windows(A: np.ndarray, fh: int, fw: int, stride: int) -> np.ndarray:
    """View of shape (m, n_H, n_W, n_C, fh, fw) over A of shape (m, H, W, n_C).

    Positions past the last full stride are dropped, matching the floor in the output-size
    formula.
    """
    view = sliding_window_view(A, (fh, fw), axis=(1, 2))
    return view[:, ::stride, ::stride]


def fold(grad_windows: np.ndarray, shape: tuple[int, ...], stride: int) -> np.ndarray:
    """Scatter-add window gradients (m, n_H, n_W, n_C, fh, fw) onto an array of ``shape``.

    Loops over the fh·fw offsets inside a window rather than over output positions: for a
    fixed offset (i, j) the targets A[:, h*s + i, w*s + j] are distinct, so one vectorised
    ``+=`` per offset is exact.
    """
    _, n_h, n_w, _, fh, fw = grad_windows.shape
    out = np.zeros(shape, dtype=grad_windows.dtype)
    for i in range(fh):
        for j in range(fw):
            out[:, i:i + stride * n_h:stride, j:j + stride * n_w:stride, :] += \
                grad_windows[..., i, j]
    return out
