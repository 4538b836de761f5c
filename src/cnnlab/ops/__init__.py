"""Numpy reference implementations of the course's convolution arithmetic.

Channels-last (m, n_H, n_W, n_C) arrays and the assignment's signatures: ``conv_forward``,
``conv_backward``, ``pool_forward``, ``pool_backward`` and their helpers, plus output-size
formulas and the parameter / multiplication counters behind the course's cost comparisons.
"""

from .conv import conv_backward, conv_forward, conv_single_step, convolve2d, zero_pad
from .cost import (
    conv_mults,
    conv_params,
    depthwise_mults,
    depthwise_separable_cost_ratio,
    depthwise_separable_mults,
    depthwise_separable_params,
    fc_params,
    pointwise_mults,
)
from .pool import create_mask_from_window, distribute_value, pool_backward, pool_forward
from .sizes import conv_output_size, conv_transpose_output_size, same_padding

__all__ = [
    "conv_backward",
    "conv_forward",
    "conv_mults",
    "conv_output_size",
    "conv_transpose_output_size",
    "conv_params",
    "conv_single_step",
    "convolve2d",
    "create_mask_from_window",
    "depthwise_mults",
    "depthwise_separable_cost_ratio",
    "depthwise_separable_mults",
    "depthwise_separable_params",
    "distribute_value",
    "fc_params",
    "pointwise_mults",
    "pool_backward",
    "pool_forward",
    "same_padding",
    "zero_pad",
]
