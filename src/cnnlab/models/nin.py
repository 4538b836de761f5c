"""Network in Network (Lin et al., 2013): 1×1 convolutions and global average pooling.

A 1×1 CONV with ``c_out`` filters of shape 1×1×``c_in`` is a fully connected layer applied at
every pixel across the channels: it shrinks or grows the channel count while H and W stay put
(pooling is what shrinks H and W), and with ``c_out == c_in`` it just adds a non-linearity.
An **mlpconv** layer is a k×k CONV followed by two such 1×1 CONVs, i.e. a small multilayer
perceptron slid over the image.

``nin`` is the paper's CIFAR-10 model (32×32×3 → 16×16 → 8×8 → global average pool).
The paper's last layer is a 1×1 CONV to the class count, then ReLU, then global average
pooling. A 1×1 CONV commutes with averaging over positions, so here it is a ``Linear`` head
on the pooled 192-d vector (same weights, same parameter count, the backbone contract's
``head``); the ReLU on the class maps is dropped, since it would only clip logits at zero.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .base import Backbone
from .registry import register_model


class ConvAct(nn.Sequential):
    """k×k CONV ("same" padding) [+ BN] + ReLU."""

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int, batch_norm: bool = False):
        layers: list[nn.Module] = [nn.Conv2d(in_chans, out_chans, kernel_size, padding=kernel_size // 2,
                                             bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_chans))
        layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Conv1x1(ConvAct):
    """A 1×1 CONV [+ BN] + ReLU: a per-pixel fully connected layer across channels."""

    def __init__(self, in_chans: int, out_chans: int, batch_norm: bool = False):
        super().__init__(in_chans, out_chans, 1, batch_norm)


def mlpconv(in_chans: int, layers: list[tuple[int, int]], batch_norm: bool = False) -> nn.Sequential:
    """An mlpconv layer: ``layers`` is [(width, kernel)], a k×k CONV then 1×1 CONVs, each with ReLU."""
    blocks: list[nn.Module] = []
    for width, kernel in layers:
        blocks.append(Conv1x1(in_chans, width, batch_norm) if kernel == 1
                      else ConvAct(in_chans, width, kernel, batch_norm))
        in_chans = width
    return nn.Sequential(*blocks)


# The paper's CIFAR-10 network: per mlpconv, [(filters, kernel)] and the pooling after it.
# Caffe's ceil-mode 3×3/2 pools take 32 → 16 → 8. The last 1×1 CONV (192 → classes) is the head.
NIN_CIFAR: list[tuple[list[tuple[int, int]], str | None]] = [
    ([(192, 5), (160, 1), (96, 1)], "max"),
    ([(192, 5), (192, 1), (192, 1)], "avg"),
    ([(192, 3), (192, 1)], None),
]


class NIN(Backbone):
    """Network in Network: stacked mlpconv layers, global average pooling, a linear head.

    Args:
        num_classes: classifier width (0 gives the pooled 192-d features).
        in_chans: input channels.
        drop_rate: dropout after each pooled mlpconv (0.5 in the paper).
        batch_norm: BN after every CONV (not in the paper; eases training from scratch).
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.5,
                 batch_norm: bool = False):
        super().__init__()
        self.num_classes = num_classes
        stages: list[nn.Module] = []
        for layers, pool in NIN_CIFAR:
            stages.append(mlpconv(in_chans, layers, batch_norm))
            if pool is not None:
                Pool = nn.MaxPool2d if pool == "max" else nn.AvgPool2d
                stages += [Pool(kernel_size=3, stride=2, ceil_mode=True), nn.Dropout(drop_rate)]
            in_chans = layers[-1][0]
        self.features = nn.Sequential(*stages)
        self.num_features = in_chans
        self.head = nn.Linear(in_chans, num_classes) if num_classes > 0 else nn.Identity()
        for m in self.features.modules():
            if isinstance(m, nn.Conv2d):  # He init: nine ReLU layers and no BN by default
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


@register_model("nin", input_size=(3, 32, 32))
def nin(num_classes: int = 10, in_chans: int = 3, **kwargs) -> NIN:
    return NIN(num_classes=num_classes, in_chans=in_chans, **kwargs)
