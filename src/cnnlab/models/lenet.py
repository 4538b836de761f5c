"""LeNet-5 as the course draws it (LeCun et al., 1998).

32×32×1 → CONV 5×5, 6 (28×28×6) → avg-pool 2/2 (14×14×6) → CONV 5×5, 16 (10×10×16)
→ avg-pool 2/2 (5×5×16 = 400) → FC 120 → FC 84 → softmax over the classes.
About 61 k parameters for 10 classes, as the seeds say ("약 60,000 parameters").
The original used sigmoid/tanh; ``act="relu"`` gives the modern variant.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .base import Backbone
from .registry import register_model

_ACTS = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}


class LeNet5(Backbone):
    """LeNet-5.

    Args:
        num_classes: size of the softmax layer.
        in_chans: input channels (1 for the original grey-scale digits).
        act: ``"tanh"`` (as published), ``"relu"`` or ``"sigmoid"``.
        pool: ``"avg"`` (as published) or ``"max"``.
        dropout: dropout before each FC layer (0 = none, as published).
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1, act: str = "tanh", pool: str = "avg",
                 dropout: float = 0.0):
        super().__init__()
        if act not in _ACTS:
            raise ValueError(f"act must be one of {sorted(_ACTS)}, got {act!r}")
        Act = _ACTS[act]
        Pool = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}[pool]
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 6, 5), Act(), Pool(2, 2),
            nn.Conv2d(6, 16, 5), Act(), Pool(2, 2),
        )
        self.pre_logits = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(16 * 5 * 5, 120), Act(),
            nn.Dropout(dropout), nn.Linear(120, 84), Act(),
        )
        self.num_features = 84
        self.head = nn.Linear(84, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.pre_logits(x)


@register_model("lenet5", input_size=(1, 32, 32))
def lenet5(num_classes: int = 10, in_chans: int = 1, **kwargs) -> LeNet5:
    return LeNet5(num_classes=num_classes, in_chans=in_chans, **kwargs)
