"""Parameter and multiplication counts, for the course's cost comparisons.

Multiplications follow the course's rule "#filter params × #filter positions × #filters":
bias additions are not counted. Spatial output sizes are passed in (``out_hw``) rather than
recomputed, because the course states its examples by output shape (e.g. 28×28×32); use
:func:`cnnlab.ops.conv_output_size` to get them from an input.
"""

from __future__ import annotations

from numbers import Integral

from .sizes import _check_int


def _positions(out_hw: int | tuple[int, int]) -> int:
    """Number of filter positions for a square side or an (n_H, n_W) pair."""
    n_h, n_w = (out_hw, out_hw) if isinstance(out_hw, Integral) else out_hw
    _check_int("n_H", n_h, 1)
    _check_int("n_W", n_w, 1)
    return n_h * n_w


def conv_params(f: int, n_c_prev: int, n_c: int, bias: bool = True) -> int:
    """Learnable parameters of a conv layer: (f·f·n_c_prev + 1)·n_c with bias.

    The count is independent of the input's height and width, which is the course's point
    about parameter sharing.
    """
    for name, value in (("f", f), ("n_c_prev", n_c_prev), ("n_c", n_c)):
        _check_int(name, value, 1)
    return (f * f * n_c_prev + int(bias)) * n_c


def fc_params(n_in: int, n_out: int, bias: bool = True) -> int:
    """Learnable parameters of a fully connected layer: (n_in + 1)·n_out with bias."""
    _check_int("n_in", n_in, 1)
    _check_int("n_out", n_out, 1)
    return (n_in + int(bias)) * n_out


def conv_mults(out_hw: int | tuple[int, int], f: int, n_c_prev: int, n_c: int) -> int:
    """Multiplications of a normal convolution: output volume × f·f·n_c_prev.

    Args:
        out_hw: output side, or (n_H, n_W).
        f: filter size.
        n_c_prev: input channels (each filter is f×f×n_c_prev).
        n_c: number of filters (output channels).
    """
    _check_int("f", f, 1)
    _check_int("n_c_prev", n_c_prev, 1)
    _check_int("n_c", n_c, 1)
    return _positions(out_hw) * n_c * f * f * n_c_prev


def depthwise_mults(out_hw: int | tuple[int, int], f: int, n_c: int) -> int:
    """Multiplications of a depthwise convolution: one f×f filter per input channel."""
    _check_int("f", f, 1)
    _check_int("n_c", n_c, 1)
    return _positions(out_hw) * n_c * f * f


def pointwise_mults(out_hw: int | tuple[int, int], n_c_prev: int, n_c: int) -> int:
    """Multiplications of a pointwise (1×1) convolution from n_c_prev to n_c channels."""
    return conv_mults(out_hw, 1, n_c_prev, n_c)


def depthwise_separable_mults(out_hw: int | tuple[int, int], f: int, n_c_prev: int,
                              n_c: int) -> int:
    """Multiplications of a depthwise f×f convolution followed by a pointwise one."""
    return depthwise_mults(out_hw, f, n_c_prev) + pointwise_mults(out_hw, n_c_prev, n_c)


def depthwise_separable_params(f: int, n_c_prev: int, n_c: int, bias: bool = True) -> int:
    """Learnable parameters of a depthwise (f×f, per channel) plus pointwise layer pair."""
    _check_int("f", f, 1)
    depthwise = (f * f + int(bias)) * n_c_prev
    return depthwise + conv_params(1, n_c_prev, n_c, bias=bias)


def depthwise_separable_cost_ratio(f: int, n_c: int) -> float:
    """Depthwise-separable over normal multiplications: 1/n_c + 1/f², n_c output channels.

    Exact, since both costs share the factor output positions × n_c_prev.
    """
    _check_int("f", f, 1)
    _check_int("n_c", n_c, 1)
    return 1 / n_c + 1 / f**2
