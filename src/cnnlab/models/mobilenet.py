"""MobileNet v1 and v2: networks built from depthwise-separable convolutions.

A depthwise-separable convolution replaces one f×f×n_c conv with n_c' filters by
(1) a *depthwise* f×f conv, one filter per input channel (``groups=n_c``), then
(2) a *pointwise* 1×1 conv to n_c' channels. Its cost relative to the normal conv is
1/n_c' + 1/f² (the course's example: 2160 multiplications normal vs 432 + 240 = 672).

- **v1** (Howard et al., 2017): a 3×3 conv stem, then 13 depthwise-separable blocks (the layer
  table ``MOBILENET_V1_TABLE``), global average pooling, FC, softmax. BN + ReLU after every conv.
- **v2** (Sandler et al., 2018): 17 *bottleneck* blocks (table ``MOBILENET_V2_TABLE``):
  1×1 expansion by a factor t → 3×3 depthwise → 1×1 *linear* projection (no activation), with a
  residual connection when the block keeps the stride at 1 and the width unchanged.

The width multiplier α scales every layer's channels, rounded to a multiple of 8
(``make_divisible``, from the TF reference code); the resolution multiplier ρ is just the input size.

torchvision key mapping (``mobilenet_v2``): our module tree mirrors torchvision's
(``features.<i>.…`` with conv/BN/activation triples indexed 0/1/2), so ``tv_remap`` renames only
the classifier: ``classifier.1.{weight,bias}`` → ``head.{weight,bias}`` (``classifier.0`` is the
dropout and has no parameters). MobileNet v1 has no torchvision counterpart.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch
import torch.nn as nn

from .base import Backbone
from .registry import register_model

# Howard et al. 2017, Table 1: the 13 depthwise-separable blocks after the 3×3/2, 32-channel stem.
# Each row: (pointwise output channels c, depthwise stride s). Output size at 224×224 in the comment.
MOBILENET_V1_TABLE: list[tuple[int, int]] = [
    # c,   s
    (64, 1),     # 112×112×64
    (128, 2),    # 56×56×128
    (128, 1),
    (256, 2),    # 28×28×256
    (256, 1),
    (512, 2),    # 14×14×512
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),  # "5×" in the paper
    (1024, 2),   # 7×7×1024
    (1024, 1),   # the paper's table prints s2 here, but 7×7 stays 7×7: a known typo
]

# Sandler et al. 2018, Table 2, after the 3×3/2, 32-channel stem and before the 1×1, 1280 conv.
# t: expansion factor, c: output channels, n: repeats, s: stride of the first repeat.
MOBILENET_V2_TABLE: list[tuple[int, int, int, int]] = [
    # t, c, n, s
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to the nearest multiple of ``divisor``, never dropping more than 10 %.

    The TF MobileNet/EfficientNet reference code (and torchvision) round this way; channel counts
    must match theirs exactly for weights to load.
    """
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvBNAct(nn.Sequential):
    """Conv (no bias, "same" padding) → BatchNorm → activation; indexed 0/1/2 like torchvision's
    ``Conv2dNormActivation`` so state-dict keys agree.

    Args:
        act: activation class, or ``None`` for a linear layer (v2's projection).
        norm: normalisation class taking the channel count (e.g. a ``partial`` of BatchNorm2d).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
                 act: Callable[[], nn.Module] | None = nn.ReLU, norm: Callable[[int], nn.Module] = nn.BatchNorm2d):
        layers = [nn.Conv2d(in_ch, out_ch, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
                  norm(out_ch)]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)


def init_mobilenet_weights(model: nn.Module, linear_init: Callable[[nn.Linear], None]) -> None:
    """He-normal (fan-out) convs, identity BN, and ``linear_init`` for FC layers (torchvision's scheme)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            linear_init(m)
            nn.init.zeros_(m.bias)


def _normal_001(m: nn.Linear) -> None:
    nn.init.normal_(m.weight, 0.0, 0.01)


def depthwise_separable(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    """v1 block: 3×3 depthwise conv (stride ``stride``) → 1×1 pointwise conv, each with BN + ReLU."""
    return nn.Sequential(OrderedDict(
        dw=ConvBNAct(in_ch, in_ch, 3, stride, groups=in_ch),
        pw=ConvBNAct(in_ch, out_ch, 1),
    ))


class MobileNetV1(Backbone):
    """MobileNet v1.

    Args:
        num_classes: classifier outputs (0: no classifier, ``forward`` returns pooled features).
        in_chans: input channels.
        width_mult: the width multiplier α (1, 0.75, 0.5, 0.25 in the paper).
        small_input: stride-1 stem for 32×32 inputs (the final map is then 2×2 rather than 1×1).
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0,
                 small_input: bool = False):
        super().__init__()
        stem = make_divisible(32 * width_mult)
        layers: list[nn.Module] = [ConvBNAct(in_chans, stem, 3, stride=1 if small_input else 2)]
        ch = stem
        for c, s in MOBILENET_V1_TABLE:
            out = make_divisible(c * width_mult)
            layers.append(depthwise_separable(ch, out, s))
            ch = out
        self.features = nn.Sequential(*layers)
        self.num_classes = num_classes
        self.num_features = ch
        self.head = nn.Linear(ch, num_classes) if num_classes > 0 else nn.Identity()
        init_mobilenet_weights(self, _normal_001)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class InvertedResidual(nn.Module):
    """v2 bottleneck: 1×1 expand (×t, ReLU6) → 3×3 depthwise (ReLU6) → 1×1 linear projection.

    The residual skip is used when ``stride == 1`` and ``in_ch == out_ch``. With t = 1 there is no
    expansion conv (torchvision's layout, which keeps the state-dict keys aligned).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(in_ch * expand_ratio))
        self.use_res_connect = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(in_ch, hidden, 1, act=nn.ReLU6))
        layers += [
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
            nn.Conv2d(hidden, out_ch, 1, bias=False),  # projection: linear, no activation
            nn.BatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(Backbone):
    """MobileNet v2, layer for layer torchvision's ``mobilenet_v2``.

    Args:
        num_classes: classifier outputs (0: no classifier, ``forward`` returns pooled features).
        in_chans: input channels.
        width_mult: the width multiplier α; the last 1×1 conv keeps 1280 channels when α < 1.
        dropout: dropout before the classifier (applied to logits only, not to ``pre_logits``).
        small_input: stride-1 stem for 32×32 inputs (the final map is then 2×2 rather than 1×1).
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0,
                 dropout: float = 0.2, small_input: bool = False):
        super().__init__()
        ch = make_divisible(32 * width_mult)
        last = make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [ConvBNAct(in_chans, ch, 3, stride=1 if small_input else 2, act=nn.ReLU6)]
        for t, c, n, s in MOBILENET_V2_TABLE:
            out = make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(ch, out, s if i == 0 else 1, t))
                ch = out
        layers.append(ConvBNAct(ch, last, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.num_classes = num_classes
        self.num_features = last
        self.head_drop = nn.Dropout(dropout)
        self.head = nn.Linear(last, num_classes) if num_classes > 0 else nn.Identity()
        init_mobilenet_weights(self, _normal_001)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.forward_pre_logits(x)
        return x if pre_logits else self.head(self.head_drop(x))


def tv_remap_classifier(key: str) -> str:
    """torchvision → cnnlab key for nets whose only difference is ``classifier.1`` → ``head``."""
    return "head." + key[len("classifier.1."):] if key.startswith("classifier.1.") else key


@register_model("mobilenet_v1", input_size=(3, 224, 224))
def mobilenet_v1(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> MobileNetV1:
    return MobileNetV1(num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model("mobilenet_v2", input_size=(3, 224, 224), torchvision="mobilenet_v2", tv_remap=tv_remap_classifier)
def mobilenet_v2(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> MobileNetV2:
    return MobileNetV2(num_classes=num_classes, in_chans=in_chans, **kwargs)
