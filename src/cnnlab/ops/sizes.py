"""Output-size arithmetic for convolution and pooling layers.

The course's formula: an n×n input, padded by p on every side and scanned by an f×f
filter with stride s, gives floor((n + 2p − f) / s) + 1 outputs per side. The filter must lie
entirely inside the padded input ("do not compute outside the padding frame"), so f may not
exceed n + 2p.
"""

from __future__ import annotations

from numbers import Integral


def _check_int(name: str, value: int, minimum: int) -> None:
    """Raise ValueError unless ``value`` is an integer (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def conv_output_size(n: int, f: int, p: int = 0, s: int = 1) -> int:
    """Output length along one spatial axis, floor((n + 2p − f) / s) + 1.

    Also covers pooling, which the course always runs with p = 0.

    Args:
        n: input length (height or width).
        f: filter (or pooling window) length.
        p: zero padding added on each side.
        s: stride.

    Raises:
        ValueError: on non-positive n, f or s, negative p, or a filter longer than the
            padded input.
    """
    _check_int("n", n, 1)
    _check_int("f", f, 1)
    _check_int("p", p, 0)
    _check_int("s", s, 1)
    if f > n + 2 * p:
        raise ValueError(f"filter size f={f} exceeds the padded input n + 2p = {n + 2 * p} "
                         f"(n={n}, p={p})")
    return int((n + 2 * p - f) // s + 1)


def same_padding(f: int) -> int:
    """Padding p = (f − 1) / 2 that makes a stride-1 convolution keep the input size.

    Raises:
        ValueError: if f is even: the course keeps f odd because an even filter would need
            asymmetric padding and has no central pixel.
    """
    _check_int("f", f, 1)
    if f % 2 == 0:
        raise ValueError(f"'same' padding needs an odd filter size (p = (f-1)/2), got f={f}; "
                         "an even f would need asymmetric padding")
    return int((f - 1) // 2)
