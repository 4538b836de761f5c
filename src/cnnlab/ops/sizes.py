"""Output-size arithmetic for convolution and pooling layers.

The course's formula: an n×n input, padded by p on every side and scanned by an f×f
filter with stride s, gives floor((n + 2p − f) / s) + 1 outputs per side. The filter must lie
entirely inside the padded input ("do not compute outside the padding frame"), so f may not
exceed n + 2p.

A transposed convolution runs the same arithmetic backwards: (n − 1)·s − 2p + f + output_padding
(``torch.nn.ConvTranspose2d``'s formula with dilation 1). The course's U-Net upsamples with f = 3,
s = 2, which doubles a side with p = 1 and output_padding = 1 (Keras' ``padding="same"``).
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


def conv_transpose_output_size(n: int, f: int, p: int = 0, s: int = 1, output_padding: int = 0) -> int:
    """Output length along one axis of a transposed convolution, (n − 1)·s − 2p + f + output_padding.

    Args:
        n: input length.
        f: filter length.
        p: padding removed from each side of the full output (torch's ``padding``).
        s: stride (the upsampling factor).
        output_padding: extra length added on one side, to pick among the ``s`` input lengths
            that a stride-``s`` convolution maps to the same output; must be smaller than ``s``.

    Raises:
        ValueError: on non-positive n, f or s, negative p, ``output_padding >= s``, or a padding
            that leaves no output.
    """
    _check_int("n", n, 1)
    _check_int("f", f, 1)
    _check_int("p", p, 0)
    _check_int("s", s, 1)
    _check_int("output_padding", output_padding, 0)
    if output_padding >= s:
        raise ValueError(f"output_padding={output_padding} must be smaller than the stride s={s}")
    out = (n - 1) * s - 2 * p + f + output_padding
    if out < 1:
        raise ValueError(f"padding p={p} removes the whole output of a transposed convolution "
                         f"(n={n}, f={f}, s={s})")
    return int(out)


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
