"""The YOLO network: any registry backbone's ``forward_features`` plus a 1×1 conv head of B×(5+C).

The head's output ``[m, B·(5+C), S, S]`` is viewed as ``[m, S, S, B, 5+C]`` (the course's
"19×19×5×85" for a 608×608 input, stride 32, 5 anchors and 80 classes).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from ...models import create_model


class YOLONet(nn.Module):
    """Backbone trunk + conv head.

    Args:
        backbone: registry name (e.g. ``darknet_tiny``, ``resnet18``); only ``forward_features`` is used.
        num_classes: C.
        num_anchors: B.
        input_size: side of the square input, a multiple of the backbone's stride.
        backbone_kwargs: extra builder kwargs.
        head_width: channels of the 3×3 convs before the 1×1 prediction conv (0: none).
        head_layers: how many such 3×3 conv + BN + leaky ReLU layers (YOLOv2 stacks three on its trunk).
    """

    def __init__(self, backbone: str, num_classes: int, num_anchors: int, input_size: int,
                 backbone_kwargs: dict[str, Any] | None = None, head_width: int = 128,
                 head_layers: int = 1):
        super().__init__()
        self.backbone = create_model(backbone, num_classes=0, **(backbone_kwargs or {}))
        self.num_classes, self.num_anchors = num_classes, num_anchors
        with torch.no_grad():
            was = self.backbone.training
            feats = self.backbone.eval().forward_features(torch.zeros(1, 3, input_size, input_size))
            self.backbone.train(was)
        if feats.ndim != 4:
            raise ValueError(f"backbone {backbone}: forward_features returns {tuple(feats.shape)}, not a feature map")
        self.grid = feats.shape[-1]
        self.stride = input_size // self.grid
        width = feats.shape[1]
        layers: list[nn.Module] = []
        for _ in range(head_layers if head_width else 0):
            layers += [nn.Conv2d(width, head_width, 3, padding=1, bias=False), nn.BatchNorm2d(head_width),
                       nn.LeakyReLU(0.1, inplace=True)]
            width = head_width
        pred = nn.Conv2d(width, num_anchors * (5 + num_classes), 1)
        with torch.no_grad():  # start with p_c ≈ 0.02: nearly every slot is empty (as RetinaNet's prior)
            pred.bias.view(num_anchors, 5 + num_classes)[:, 0] = -4.0
        self.head = nn.Sequential(*layers, pred)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[m, 3, H, W]`` → raw ``[m, S, S, B, 5+C]`` (no activation; see :func:`.predict.yolo_head`)."""
        out = self.head(self.backbone.forward_features(x))
        m, _, s_h, s_w = out.shape
        return out.view(m, self.num_anchors, 5 + self.num_classes, s_h, s_w).permute(0, 3, 4, 1, 2)
