"""The backbone contract every cnnlab model follows (after timm's ``resnet.py``).

- ``num_features``: width of the vector the final classifier consumes (``pre_logits`` output).
- ``forward_features(x)``: the convolutional trunk; returns a feature map or vector.
- ``forward_head(x, pre_logits=False)``: pooling/flatten, hidden FC layers, then the classifier
  unless ``pre_logits`` is set.
- ``reset_classifier(num_classes)``: a fresh final layer (``num_classes=0`` gives identity).

Fine-tuning, face embeddings and multi-crop use nothing else.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class Backbone(nn.Module):
    """Base class: subclasses set ``self.head`` (the final nn.Linear or Identity) and ``num_features``."""

    num_features: int
    head: nn.Module

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``forward_features`` output to the ``num_features`` vector. Default: global avg pool."""
        if x.ndim > 2:
            x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1) if x.ndim == 4 else x.mean(dim=tuple(range(2, x.ndim))), 1)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.forward_pre_logits(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final layer for ``num_classes`` outputs (0 removes it)."""
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def get_classifier(self) -> nn.Module:
        return self.head
