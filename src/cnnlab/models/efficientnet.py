"""EfficientNet B0–B7 (Tan & Le, 2019): one baseline network scaled up by compound scaling.

Compound scaling grows depth, width and input resolution together with one coefficient φ:

    depth d = α^φ,  width w = β^φ,  resolution r = γ^φ,   α = 1.2, β = 1.1, γ = 1.15,

chosen under α·β²·γ² ≈ 2 so that FLOPs grow by about 2^φ (``compound_scaling``).
The released B1–B7 coefficients (the TF reference repo, which torchvision copies) are hand-rounded
from this rule rather than computed from it: ``scaling_table`` sets them beside the rule at
φ = 0…7 and gives the φ each published coefficient implies (B1 sits near φ ≈ 0.5, B2 near 1,
B5–B7 near 5–7; depth is always rounded below α^φ). We build the published ones
(``EFFICIENTNET_VARIANTS``) so that torchvision weights load.

The baseline B0 (``EFFICIENTNET_B0_TABLE``) is a stack of MBConv blocks: MobileNet v2's inverted
bottleneck (1×1 expand → k×k depthwise → 1×1 linear projection, SiLU activations) plus a
squeeze-and-excitation gate after the depthwise conv, and stochastic depth on the residual
branch (drop probability rising linearly from 0 to ``drop_path_rate`` over the blocks).
Width scales channels (rounded to multiples of 8), depth scales each stage's repeats
(``ceil(n·d)``). B5–B7 use BatchNorm with eps 1e-3 and momentum 0.01, as in torchvision.

torchvision key mapping (``efficientnet_b0`` … ``efficientnet_b7``): our module tree mirrors
torchvision's (``features.<stage>.<block>.block.<i>.…``, SE convs ``fc1``/``fc2``), so ``tv_remap``
renames only the classifier: ``classifier.1.{weight,bias}`` → ``head.{weight,bias}``.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable

import torch
import torch.nn as nn

from .base import Backbone
from .mobilenet import ConvBNAct, init_mobilenet_weights, make_divisible, tv_remap_classifier
from .registry import register_model

# Tan & Le 2019, Table 1 (EfficientNet-B0), between the 3×3/2, 32-channel stem and the
# 1×1, 1280-channel head conv. t: expansion, k: depthwise kernel, s: first stride, c: out channels,
# n: repeats. Resolution at 224×224 input in the comment.
EFFICIENTNET_B0_TABLE: list[tuple[int, int, int, int, int]] = [
    # t, k, s,   c, n
    (1, 3, 1, 16, 1),   # MBConv1, k3×3  112×112
    (6, 3, 2, 24, 2),   # MBConv6, k3×3  112×112 → 56×56
    (6, 5, 2, 40, 2),   # MBConv6, k5×5  56×56 → 28×28
    (6, 3, 2, 80, 3),   # MBConv6, k3×3  28×28 → 14×14
    (6, 5, 1, 112, 3),  # MBConv6, k5×5  14×14
    (6, 5, 2, 192, 4),  # MBConv6, k5×5  14×14 → 7×7
    (6, 3, 1, 320, 1),  # MBConv6, k3×3  7×7
]

# Published (width_mult, depth_mult, resolution, dropout) per variant, as in torchvision.
EFFICIENTNET_VARIANTS: dict[str, tuple[float, float, int, float]] = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
}
_TF_BN_VARIANTS = ("b5", "b6", "b7")  # torchvision ported these from TF: BN eps 1e-3, momentum 0.01

ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15  # depth, width, resolution bases from the paper's grid search


def compound_scaling(phi: float, base_resolution: int = 224) -> tuple[float, float, float]:
    """The paper's rule (Eq. 3): ``(width β^φ, depth α^φ, resolution base·γ^φ)``."""
    return BETA ** phi, ALPHA ** phi, base_resolution * GAMMA ** phi


def scaling_table(base_resolution: int = 224) -> list[dict[str, str | float]]:
    """Each published variant B<k> beside the rule at φ = k, and the φ its coefficients imply.

    Returns:
        One dict per variant: its ``variant`` name ("b0"…), ``phi``, the published
        ``width``/``depth``/``resolution``, the rule's ``rule_width``/``rule_depth``/``rule_resolution``
        at φ = k, and ``phi_width``/``phi_depth``/``phi_resolution`` = log(published)/log(base).
    """
    rows = []
    for phi, (name, (w, d, r, _)) in enumerate(EFFICIENTNET_VARIANTS.items()):
        rw, rd, rr = compound_scaling(phi, base_resolution)
        rows.append({
            "variant": name, "phi": phi, "width": w, "depth": d, "resolution": r,
            "rule_width": rw, "rule_depth": rd, "rule_resolution": rr,
            "phi_width": math.log(w) / math.log(BETA), "phi_depth": math.log(d) / math.log(ALPHA),
            "phi_resolution": math.log(r / base_resolution) / math.log(GAMMA),
        })
    return rows


class SqueezeExcite(nn.Module):
    """Channel gate: global average pool → 1×1 conv (squeeze) → SiLU → 1×1 conv → sigmoid → scale."""

    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.sigmoid(self.fc2(self.act(self.fc1(nn.functional.adaptive_avg_pool2d(x, 1)))))
        return scale * x


class StochasticDepth(nn.Module):
    """Drop the whole residual branch per sample with probability ``p`` while training.

    Survivors are scaled by 1/(1-p) so the expected output is unchanged; identity in eval mode.
    Same sampling as ``torchvision.ops.stochastic_depth(mode="row")``.
    """

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"drop probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        noise = torch.empty([x.shape[0]] + [1] * (x.ndim - 1), dtype=x.dtype, device=x.device)
        noise.bernoulli_(survival)
        if survival > 0.0:
            noise.div_(survival)
        return x * noise

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MBConv(nn.Module):
    """Mobile inverted bottleneck with squeeze-and-excitation.

    1×1 expand to ``make_divisible(in_ch·t)`` (skipped when that equals ``in_ch``) → k×k depthwise
    → SE (squeeze to ``max(1, in_ch // 4)``) → 1×1 linear projection; the residual branch goes
    through stochastic depth when stride is 1 and widths match.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand_ratio: int,
                 drop_path: float, norm: Callable[[int], nn.Module]):
        super().__init__()
        self.use_res_connect = stride == 1 and in_ch == out_ch
        hidden = make_divisible(in_ch * expand_ratio)
        layers: list[nn.Module] = []
        if hidden != in_ch:
            layers.append(ConvBNAct(in_ch, hidden, 1, act=nn.SiLU, norm=norm))
        layers += [
            ConvBNAct(hidden, hidden, kernel, stride, groups=hidden, act=nn.SiLU, norm=norm),
            SqueezeExcite(hidden, max(1, in_ch // 4)),
            ConvBNAct(hidden, out_ch, 1, act=None, norm=norm),
        ]
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.use_res_connect:
            out = self.stochastic_depth(out) + x
        return out


def _linear_init(m: nn.Linear) -> None:
    bound = 1.0 / math.sqrt(m.out_features)
    nn.init.uniform_(m.weight, -bound, bound)


class EfficientNet(Backbone):
    """EfficientNet at any width/depth multiplier (B0's table scaled).

    Args:
        num_classes: classifier outputs (0: no classifier, ``forward`` returns pooled features).
        in_chans: input channels.
        width_mult: channel multiplier (β^φ in the paper's rule).
        depth_mult: repeat multiplier (α^φ); each stage gets ``ceil(n·depth_mult)`` blocks.
        dropout: dropout before the classifier (applied to logits only, not to ``pre_logits``).
        drop_path_rate: stochastic-depth probability of the last block (block i gets rate·i/N).
        bn_eps, bn_momentum: BatchNorm settings (torchvision: 1e-5/0.1 for B0–B4, 1e-3/0.01 for B5–B7).
        small_input: stride-1 stem for 32×32 inputs (the final map is then 2×2 rather than 1×1).
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0,
                 depth_mult: float = 1.0, dropout: float = 0.2, drop_path_rate: float = 0.2,
                 bn_eps: float = 1e-5, bn_momentum: float = 0.1, small_input: bool = False):
        super().__init__()
        norm = partial(nn.BatchNorm2d, eps=bn_eps, momentum=bn_momentum)
        stages = [(t, k, s, make_divisible(c * width_mult), math.ceil(n * depth_mult))
                  for t, k, s, c, n in EFFICIENTNET_B0_TABLE]
        total = sum(n for *_, n in stages)
        ch = make_divisible(32 * width_mult)
        layers: list[nn.Module] = [ConvBNAct(in_chans, ch, 3, 1 if small_input else 2, act=nn.SiLU, norm=norm)]
        block_id = 0
        for t, k, s, c, n in stages:
            blocks = []
            for i in range(n):
                blocks.append(MBConv(ch, c, k, s if i == 0 else 1, t, drop_path_rate * block_id / total, norm))
                ch = c
                block_id += 1
            layers.append(nn.Sequential(*blocks))
        self.num_features = 4 * ch  # 1280 for B0
        layers.append(ConvBNAct(ch, self.num_features, 1, act=nn.SiLU, norm=norm))
        self.features = nn.Sequential(*layers)
        self.num_classes = num_classes
        self.head_drop = nn.Dropout(dropout)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        init_mobilenet_weights(self, _linear_init)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.forward_pre_logits(x)
        return x if pre_logits else self.head(self.head_drop(x))


def _register(variant: str) -> None:
    width, depth, res, dropout = EFFICIENTNET_VARIANTS[variant]
    bn = dict(bn_eps=1e-3, bn_momentum=0.01) if variant in _TF_BN_VARIANTS else {}
    name = f"efficientnet_{variant}"

    def build(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> EfficientNet:
        kwargs = {"dropout": dropout, **bn, **kwargs}
        return EfficientNet(num_classes=num_classes, in_chans=in_chans, width_mult=width, depth_mult=depth, **kwargs)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"EfficientNet-{variant.upper()}: width ×{width}, depth ×{depth}, {res}×{res} input."
    register_model(name, input_size=(3, res, res), torchvision=name, tv_remap=tv_remap_classifier)(build)


for _variant in EFFICIENTNET_VARIANTS:
    _register(_variant)
