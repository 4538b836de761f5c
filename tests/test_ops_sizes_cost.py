"""Output sizes and cost counters: the seeds' numbers, PyTorch shapes, parameters and FLOPs."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.ops import (
    conv_mults,
    conv_output_size,
    conv_params,
    depthwise_mults,
    depthwise_separable_cost_ratio,
    depthwise_separable_mults,
    depthwise_separable_params,
    fc_params,
    pointwise_mults,
    same_padding,
)


@pytest.mark.parametrize("n, f, p, s, expected", [
    (6, 3, 0, 1, 4),      # 6×6 ∗ 3×3 = 4×4 (valid)
    (6, 3, 1, 1, 6),      # padding 1: 8×8 ∗ 3×3 = 6×6 (same)
    (7, 3, 0, 2, 3),      # the strided 7×7 example
    (32, 5, 0, 1, 28),    # LeNet-style network: CONV1
    (28, 2, 0, 2, 14),    # POOL1
    (14, 5, 0, 1, 10),    # CONV2
    (10, 2, 0, 2, 5),     # POOL2 → 5·5·16 = 400 features
    (227, 11, 0, 4, 55),  # AlexNet: 11×11, s=4
    (55, 3, 0, 2, 27),    # 3×3, s=2 max pool → 27×27×96
    (27, 3, 0, 2, 13),    # → 13×13×256
    (13, 3, 0, 2, 6),     # → 6×6×256 = 9,216 (the floor matters: (13−3)/2+1 = 6)
])
def test_conv_output_size_seed_examples(n, f, p, s, expected):
    assert conv_output_size(n, f, p, s) == expected


def test_conv_output_size_matches_torch():
    for n, f, p, s in itertools.product(range(1, 10), range(1, 6), range(3), range(1, 4)):
        if f > n + 2 * p:
            continue
        x = torch.empty(1, 1, n, n, device="meta")
        w = torch.empty(1, 1, f, f, device="meta")
        assert F.conv2d(x, w, stride=s, padding=p).shape[-1] == conv_output_size(n, f, p, s)


@pytest.mark.parametrize("f, p", [(1, 0), (3, 1), (5, 2), (7, 3), (11, 5)])
def test_same_padding_keeps_the_size(f, p):
    # 003 writes "f = 3 → p = 2"; the formula beside it, p = (f−1)/2, gives 1.
    assert same_padding(f) == p
    assert all(conv_output_size(n, f, same_padding(f), 1) == n for n in range(f, f + 10))


@pytest.mark.parametrize("f", [2, 4, 6])
def test_same_padding_rejects_even_filters(f):
    with pytest.raises(ValueError, match="odd filter size"):
        same_padding(f)


@pytest.mark.parametrize("args, match", [
    ((4, 7, 1, 1), "exceeds the padded input"),
    ((4, 3, 0, 0), "s must be"),
    ((4, 3, -1, 1), "p must be"),
    ((0, 1, 0, 1), "n must be"),
    ((4.0, 3, 0, 1), "n must be an integer"),
])
def test_conv_output_size_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        conv_output_size(*args)


def test_seed_network_parameter_counts():
    """002's CONV/POOL/FC table: 608, 3,216, 0, 48,120, 10,164, 850."""
    assert conv_params(5, 3, 8) == 608
    assert conv_params(5, 8, 16) == 3_216
    assert fc_params(400, 120) == 48_120
    assert fc_params(120, 84) == 10_164
    assert fc_params(84, 10) == 850
    assert conv_params(3, 3, 10) == 280  # 003: ten 3×3×3 filters, 28 parameters each


@pytest.mark.parametrize("f, c_in, c_out, bias", [(5, 3, 8, True), (3, 7, 2, False),
                                                   (1, 192, 16, True)])
def test_param_counters_match_torch_layers(f, c_in, c_out, bias):
    def numel(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    assert conv_params(f, c_in, c_out, bias) == numel(nn.Conv2d(c_in, c_out, f, bias=bias))
    assert fc_params(c_in, c_out, bias) == numel(nn.Linear(c_in, c_out, bias=bias))
    separable = nn.Sequential(nn.Conv2d(c_in, c_in, f, groups=c_in, bias=bias),
                              nn.Conv2d(c_in, c_out, 1, bias=bias))
    assert depthwise_separable_params(f, c_in, c_out, bias) == numel(separable)


def test_seed_inception_bottleneck_cost():
    """28×28×192 → 5×5 conv → 28×28×32: ~120M; through a 16-channel 1×1 bottleneck: ~12.4M."""
    direct = conv_mults(28, 5, 192, 32)
    bottleneck = conv_mults(28, 1, 192, 16)
    second = conv_mults(28, 5, 16, 32)
    assert direct == 28 * 28 * 32 * 5 * 5 * 192 == 120_422_400
    assert bottleneck == 2_408_448      # "2.4M" (000 prints 28×28×192×192; ×16 is meant)
    assert second == 10_035_200         # "10.0M"
    assert round((bottleneck + second) / 1e6, 1) == 12.4
    assert pointwise_mults(28, 192, 16) == bottleneck


def test_seed_depthwise_separable_cost():
    """6×6×3 input, 3×3 filters, 5 outputs (003): 2,160 normal vs 432 + 240 = 672."""
    assert conv_mults(4, 3, 3, 5) == 2_160
    assert depthwise_mults(4, 3, 3) == 432
    assert pointwise_mults(4, 3, 5) == 240
    assert depthwise_separable_mults(4, 3, 3, 5) == 672
    assert depthwise_separable_cost_ratio(3, 5) == pytest.approx(672 / 2_160)
    # The seeds' "1/512 + 1/3²" = 521/4608: "about ten times" (8.8×) cheaper.
    assert depthwise_separable_cost_ratio(3, 512) == pytest.approx(521 / 4608)
    assert depthwise_separable_mults(7, 3, 256, 512) / conv_mults(7, 3, 256, 512) \
        == pytest.approx(521 / 4608)


@pytest.mark.parametrize("n, f, c_in, c_out, stride", [(6, 3, 3, 5, 1), (9, 3, 4, 6, 2),
                                                        (7, 5, 2, 3, 1)])
def test_mult_counters_match_torch_flop_counter(n, f, c_in, c_out, stride):
    """PyTorch counts 2 FLOPs (multiply + add) per multiplication of a convolution."""
    x = torch.zeros(1, c_in, n, n)
    out = conv_output_size(n, f, 0, stride)
    layers = {
        "conv": (nn.Conv2d(c_in, c_out, f, stride, bias=False), conv_mults(out, f, c_in, c_out)),
        "depthwise": (nn.Conv2d(c_in, c_in, f, stride, groups=c_in, bias=False),
                      depthwise_mults(out, f, c_in)),
        "separable": (nn.Sequential(nn.Conv2d(c_in, c_in, f, stride, groups=c_in, bias=False),
                                    nn.Conv2d(c_in, c_out, 1, bias=False)),
                      depthwise_separable_mults(out, f, c_in, c_out)),
    }
    for name, (layer, mults) in layers.items():
        with FlopCounterMode(display=False) as counter:
            layer(x)
        assert counter.get_total_flops() == 2 * mults, name


def test_mult_counters_accept_rectangular_outputs():
    assert conv_mults((4, 6), 3, 2, 5) == 4 * 6 * 5 * 3 * 3 * 2
    with pytest.raises(ValueError, match="n_W must be"):
        conv_mults((4, 0), 3, 2, 5)
