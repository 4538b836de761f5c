"""VGG (Simonyan & Zisserman, 2015), configurations A, B, D and E, with or without batch norm.

Every CONV is 3×3, stride 1, "same"; every max-pool is 2×2, stride 2 (as the course says of
VGG-16: "16 layers that have weights", [CONV 64]×2 meaning two 64-filter CONVs). The table
below is the paper's Table 1; the three FC layers (4096, 4096, classes) complete the count.
An adaptive average pool to 7×7 before the FCs (as in torchvision) admits inputs smaller than
224×224, e.g. 32×32, at the original parameter count.

torchvision key mapping (``tv_remap``): ``features.*`` is unchanged (the batch-norm variants
interleave ``BatchNorm2d`` exactly as torchvision does, so the indices agree); torchvision's
``classifier`` = [Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear] becomes our
``pre_logits`` (indices 0-5) plus ``head`` (its index 6).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .alexnet import remap_classifier_key
from .base import Backbone
from .registry import register_model

# Table 1 of the paper: an int is a 3×3 CONV with that many filters, "M" a 2×2/2 max-pool.
CFGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # vgg11
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # vgg13
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],  # vgg16
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
          512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],  # vgg19
}


def make_features(cfg: list[int | str], in_chans: int, batch_norm: bool) -> nn.Sequential:
    """The convolutional trunk for one configuration (CONV[-BN]-ReLU per int, max-pool per "M")."""
    layers: list[nn.Module] = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(in_chans, v, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        in_chans = v
    return nn.Sequential(*layers)


class VGG(Backbone):
    """A VGG network built from a ``CFGS`` row.

    Args:
        cfg: a configuration list (see ``CFGS``).
        batch_norm: insert BatchNorm2d after every CONV (the ``_bn`` variants).
        num_classes: classifier width (0 gives the 4096-d pre-logits).
        in_chans: input channels.
        drop_rate: dropout after each of the two hidden FC layers.
    """

    def __init__(self, cfg: list[int | str], batch_norm: bool = False, num_classes: int = 1000,
                 in_chans: int = 3, drop_rate: float = 0.5):
        super().__init__()
        self.num_classes = num_classes
        self.features = make_features(cfg, in_chans, batch_norm)
        self.pool = nn.AdaptiveAvgPool2d((7, 7))
        self.pre_logits = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(drop_rate),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(drop_rate),
        )
        self.num_features = 4096
        self.head = nn.Linear(4096, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's scheme: He init for the ReLU CONVs, small Gaussian FCs.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.pre_logits(torch.flatten(self.pool(x), 1))


def _vgg(cfg: str, batch_norm: bool, num_classes: int, in_chans: int, **kwargs) -> VGG:
    return VGG(CFGS[cfg], batch_norm=batch_norm, num_classes=num_classes, in_chans=in_chans, **kwargs)


def _register(name: str):
    return register_model(name, input_size=(3, 224, 224), torchvision=name, tv_remap=remap_classifier_key)


@_register("vgg11")
def vgg11(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VGG:
    return _vgg("A", False, num_classes, in_chans, **kwargs)


@_register("vgg11_bn")
def vgg11_bn(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VGG:
    return _vgg("A", True, num_classes, in_chans, **kwargs)


@_register("vgg13")
def vgg13(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VGG:
    return _vgg("B", False, num_classes, in_chans, **kwargs)


@_register("vgg13_bn")
def vgg13_bn(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VGG:
    return _vgg("B", True, num_classes, in_chans, **kwargs)


@_register("vgg16")
def vgg16(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VGG:
    return _vgg("D", False, num_classes, in_chans, **kwargs)


@_register("vgg16_bn")
def vgg16_bn(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VGG:
    return _vgg("D", True, num_classes, in_chans, **kwargs)


@_register("vgg19")
def vgg19(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VGG:
    return _vgg("E", False, num_classes, in_chans, **kwargs)


@_register("vgg19_bn")
def vgg19_bn(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VGG:
    return _vgg("E", True, num_classes, in_chans, **kwargs)
