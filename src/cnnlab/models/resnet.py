"""Residual networks (He et al., 2016) with the course's identity and convolutional blocks.

A residual block computes a[l+2] = g(z[l+2] + shortcut(a[l])). When a[l] and z[l+2] have the
same shape the shortcut is the identity: the course's **identity block**. When the block
changes the number of channels or halves H and W, the shortcut is W_s, a 1×1 CONV (stride 2
where it downsamples) plus batch norm with no activation: the **convolutional block**.
``BasicBlock`` (two 3×3 CONVs, resnet18/34) and ``Bottleneck`` (1×1 → 3×3 → 1×1, ×4 wider
output, resnet50/101/152) each come in both kinds; ``block.kind`` says which. As in
torchvision (ResNet v1.5), a bottleneck downsamples in its 3×3 CONV.

``small_input=True`` swaps the ImageNet stem (7×7/2 CONV + 3×3/2 max-pool, for 224×224) for a
3×3/1 CONV and no pool, so 32×32 inputs keep a 4×4 map at the last stage.
``zero_init_residual=True`` zeroes the last BN scale of every block, so each block starts as
the identity the course argues is easy to learn (a[l+2] = g(a[l]) = a[l]).

torchvision key mapping (``tv_remap``): ``conv1.*`` → ``stem.0.*``, ``bn1.*`` → ``stem.1.*``,
``fc.*`` → ``head.*``, ``layerN.i.downsample.*`` → ``layerN.i.shortcut.*``; every other key
(``layerN.i.conv1``, ``.bn1`` ...) is unchanged.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .base import Backbone
from .registry import register_model


def conv3x3(in_chans: int, out_chans: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_chans, out_chans, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_chans: int, out_chans: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_chans, out_chans, kernel_size=1, stride=stride, bias=False)


class Projection(nn.Sequential):
    """The convolutional block's shortcut W_s: 1×1 CONV (stride ``stride``) + BN, no activation."""

    def __init__(self, in_chans: int, out_chans: int, stride: int):
        super().__init__(conv1x1(in_chans, out_chans, stride), nn.BatchNorm2d(out_chans))


def make_shortcut(in_chans: int, out_chans: int, stride: int) -> nn.Module:
    """Identity when shapes already match (identity block), else a ``Projection`` (convolutional block)."""
    if stride == 1 and in_chans == out_chans:
        return nn.Identity()
    return Projection(in_chans, out_chans, stride)


class _Residual(nn.Module):
    """Shared behaviour: ``kind`` and the final add-then-ReLU."""

    shortcut: nn.Module
    relu: nn.Module

    @property
    def kind(self) -> str:
        """``"identity"`` or ``"convolutional"``, in the course's naming."""
        return "identity" if isinstance(self.shortcut, nn.Identity) else "convolutional"

    def _merge(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.relu(z + self.shortcut(a))


class BasicBlock(_Residual):
    """Two 3×3 CONVs (the first with ``stride``) with a shortcut around them."""

    expansion = 1

    def __init__(self, in_chans: int, width: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv3x3(in_chans, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = make_shortcut(in_chans, width, stride)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.relu(self.bn1(self.conv1(x)))
        return self._merge(self.bn2(self.conv2(z)), x)


class Bottleneck(_Residual):
    """1×1 reduce → 3×3 (with ``stride``) → 1×1 expand to ``4 * width``, with a shortcut around them."""

    expansion = 4

    def __init__(self, in_chans: int, width: int, stride: int = 1):
        super().__init__()
        out_chans = width * self.expansion
        self.conv1 = conv1x1(in_chans, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_chans)
        self.bn3 = nn.BatchNorm2d(out_chans)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = make_shortcut(in_chans, out_chans, stride)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.relu(self.bn1(self.conv1(x)))
        z = self.relu(self.bn2(self.conv2(z)))
        return self._merge(self.bn3(self.conv3(z)), x)


# He et al. (2016), Table 1: block type and number of blocks in conv2_x .. conv5_x.
RESNET_TABLE: dict[str, tuple[type[_Residual], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
    "resnet152": (Bottleneck, (3, 8, 36, 3)),
}
STAGE_WIDTHS = (64, 128, 256, 512)
STAGE_STRIDES = (1, 2, 2, 2)


def make_stem(in_chans: int, small_input: bool) -> nn.Sequential:
    """ImageNet stem (224 → 56) or the CIFAR-style 3×3 stem (32 → 32)."""
    if small_input:
        return nn.Sequential(conv3x3(in_chans, 64), nn.BatchNorm2d(64), nn.ReLU(inplace=True))
    return nn.Sequential(
        nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )


def make_stage(block: type[_Residual], in_chans: int, width: int, depth: int, stride: int) -> nn.Sequential:
    """One stage: a first block that may change shape, then ``depth - 1`` identity blocks."""
    blocks = [block(in_chans, width, stride)]
    blocks += [block(width * block.expansion, width) for _ in range(depth - 1)]
    return nn.Sequential(*blocks)


class ResNet(Backbone):
    """A ResNet from a block type and per-stage depths.

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        layers: number of blocks in each of the four stages.
        num_classes: classifier width (0 gives the pooled features).
        in_chans: input channels.
        small_input: 3×3 stride-1 stem without max-pool, for 32×32 inputs.
        zero_init_residual: start every block as the identity (last BN scale 0).
    """

    def __init__(self, block: type[_Residual], layers: tuple[int, ...], num_classes: int = 1000,
                 in_chans: int = 3, small_input: bool = False, zero_init_residual: bool = False):
        super().__init__()
        self.num_classes = num_classes
        self.stem = make_stem(in_chans, small_input)
        chans = 64
        for i, (width, depth, stride) in enumerate(zip(STAGE_WIDTHS, layers, STAGE_STRIDES), start=1):
            self.add_module(f"layer{i}", make_stage(block, chans, width, depth, stride))
            chans = width * block.expansion
        self.num_features = chans
        self.head = nn.Linear(chans, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, _Residual):
                    nn.init.zeros_(m.last_bn.weight)

    def blocks(self) -> list[_Residual]:
        """All residual blocks, in order."""
        return [m for m in self.modules() if isinstance(m, _Residual)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def tv_remap(key: str) -> str:
    """Map one torchvision ResNet state-dict key to ours (see the module docstring)."""
    top, _, rest = key.partition(".")
    renamed = {"conv1": "stem.0", "bn1": "stem.1", "fc": "head"}
    if top in renamed:
        return f"{renamed[top]}.{rest}"
    return key.replace(".downsample.", ".shortcut.")


def _resnet(name: str, num_classes: int, in_chans: int, **kwargs) -> ResNet:
    block, layers = RESNET_TABLE[name]
    return ResNet(block, layers, num_classes=num_classes, in_chans=in_chans, **kwargs)


def _register(name: str):
    return register_model(name, input_size=(3, 224, 224), torchvision=name, tv_remap=tv_remap)


@_register("resnet18")
def resnet18(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResNet:
    return _resnet("resnet18", num_classes, in_chans, **kwargs)


@_register("resnet34")
def resnet34(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResNet:
    return _resnet("resnet34", num_classes, in_chans, **kwargs)


@_register("resnet50")
def resnet50(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResNet:
    return _resnet("resnet50", num_classes, in_chans, **kwargs)


@_register("resnet101")
def resnet101(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResNet:
    return _resnet("resnet101", num_classes, in_chans, **kwargs)


@_register("resnet152")
def resnet152(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResNet:
    return _resnet("resnet152", num_classes, in_chans, **kwargs)
