"""A small Darknet-style trunk sized for CPU: the from-scratch YOLO backbone.

After YOLOv2's tiny model (tiny-yolo-voc.cfg): 3×3 conv + batch norm + leaky ReLU (0.1) stages,
each followed by a 2×2 max-pool except the last, so the stride is 2^(stages − 1)::

    # width   (default: 6 stages → stride 32, 608×608 → 19×19)
      16  → pool
      32  → pool
      64  → pool
      128 → pool
      256 → pool
      256

``widths=[16, 32, 64, 128, 128]`` gives stride 16 (a 128×128 scene → an 8×8 grid).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .base import Backbone
from .registry import register_model


def _conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.LeakyReLU(0.1, inplace=True))


class DarknetTiny(Backbone):
    """Darknet-style trunk; ``forward_features`` is the stride-2^(len(widths)−1) feature map.

    Args:
        num_classes: classifier width on the pooled features (0: no classifier).
        in_chans: input channels.
        widths: output channels of each conv stage (every stage but the last is pooled).
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 3, widths: tuple[int, ...] = (16, 32, 64, 128, 256, 256)):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_chans
        for i, w in enumerate(widths):
            layers.append(_conv(c, w))
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2, 2))
            c = w
        self.features = nn.Sequential(*layers)
        self.stride = 2 ** (len(widths) - 1)
        self.num_features = c
        self.reset_classifier(num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


@register_model(input_size=(3, 128, 128))
def darknet_tiny(num_classes: int = 10, in_chans: int = 3, **kwargs) -> DarknetTiny:
    """Darknet-style tiny trunk (stride 32 by default; ``widths`` sets depth and width)."""
    return DarknetTiny(num_classes=num_classes, in_chans=in_chans, **kwargs)
