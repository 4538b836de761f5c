"""AlexNet (Krizhevsky et al., 2012) in torchvision's single-GPU layout.

The course draws the paper's network on a 227×227×3 input: CONV 11×11/4, 96 → 55×55×96,
max-pool 3×3/2 → 27×27×96, CONV 5×5 "same", 256 → max-pool → 13×13×256, three 3×3 "same"
CONVs (384, 384, 256), max-pool → 6×6×256 = 9216 → FC 4096 → FC 4096 → softmax 1000.
torchvision (and this module) follow Krizhevsky's 2014 "one weird trick" variant instead:
a 224×224×3 input with padding 2 on the first conv (which also gives 55×55), widths
64-192-384-256-256 and no LRN. The flattened vector is still 6×6×256 = 9216, for 224 or 227
inputs, and an adaptive average pool to 6×6 lets smaller inputs (e.g. 64×64) through.

torchvision key mapping (``tv_remap``): ``features.*`` is unchanged; torchvision's
``classifier`` = [Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear] becomes our
``pre_logits`` (indices 0-5, same numbering) plus ``head`` (its index 6).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .base import Backbone
from .registry import register_model


def remap_classifier_key(key: str) -> str:
    """Map a torchvision key to ours where ``classifier.6`` is the final layer (AlexNet, VGG).

    ``classifier.6.*`` → ``head.*``; other ``classifier.N.*`` → ``pre_logits.N.*``; the rest as is.
    """
    if key.startswith("classifier.6."):
        return "head." + key[len("classifier.6."):]
    if key.startswith("classifier."):
        return "pre_logits." + key[len("classifier."):]
    return key


class AlexNet(Backbone):
    """AlexNet as torchvision builds it.

    Args:
        num_classes: classifier width (0 gives the 4096-d pre-logits).
        in_chans: input channels.
        drop_rate: dropout before each of the two hidden FC layers.
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5):
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.pool = nn.AdaptiveAvgPool2d((6, 6))
        self.pre_logits = nn.Sequential(
            nn.Dropout(drop_rate), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(drop_rate), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
        )
        self.num_features = 4096
        self.head = nn.Linear(4096, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.pre_logits(torch.flatten(self.pool(x), 1))


@register_model("alexnet", input_size=(3, 224, 224), torchvision="alexnet", tv_remap=remap_classifier_key)
def alexnet(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> AlexNet:
    return AlexNet(num_classes=num_classes, in_chans=in_chans, **kwargs)
