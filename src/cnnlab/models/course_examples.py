"""The course's worked example networks, registered so ``cnnlab summary`` can reproduce their numbers.

- ``course_lenet_example``: week 1's "Neural network example" (32×32×3, CONV-POOL-CONV-POOL-FC-FC-softmax).
- ``course_39x39_example``: week 1's "Example ConvNet" (39×39×3 → 7×7×40 = 1,960 → logistic/softmax).
- ``course_inception_naive_5x5`` / ``course_inception_bottleneck_5x5``: week 2's "problem of
  computational cost" (28×28×192 → 28×28×32: about 120 M multiplications, 12.4 M with a 1×1 bottleneck).
- ``course_normal_conv_example`` / ``course_depthwise_separable_example``: MobileNet's cost
  comparison (6×6×3 → 4×4×5: 2,160 multiplications vs 432 + 240 = 672).

The course leaves the activations unspecified; ReLU is used. The four cost examples are bare
blocks: their default ``num_classes=0`` makes the head an identity after global average pooling,
so their multiply-adds are exactly the course's; ``num_classes > 0`` adds a linear classifier on
the pooled features so they still fit the Backbone contract.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn

from .base import Backbone
from .registry import register_model

# Week 1 "Neural network example" — kind, f, s, filters. Activation sizes on 32×32×3:
# 3,072 → 6,272 → 1,568 → 1,600 → 400 → FC 120 → FC 84 → softmax 10.
_LENET_EXAMPLE_CONVS = [
    ("conv", 5, 1, 8),   # CONV1: 28×28×8, (5·5·3 + 1)·8 = 608 params
    ("maxpool", 2, 2, None),  # POOL1: 14×14×8
    ("conv", 5, 1, 16),  # CONV2: 10×10×16, (5·5·8 + 1)·16 = 3,216 params
    ("maxpool", 2, 2, None),  # POOL2: 5×5×16 = 400
]
_LENET_EXAMPLE_FCS = [120, 84]  # FC3: 400·120 + 120 = 48,120; FC4: 120·84 + 84 = 10,164

# Week 1 "Example ConvNet" — f, s, filters (p = 0): 39×39×3 → 37×37×10 → 17×17×20 → 7×7×40.
_39X39_EXAMPLE_CONVS = [
    ("conv", 3, 1, 10),
    ("conv", 5, 2, 20),
    ("conv", 5, 2, 40),
]


def _conv_stack(table: list[tuple], in_chans: int) -> tuple[nn.Sequential, int]:
    """Build CONV(+ReLU)/MAXPOOL layers from ``(kind, f, s, filters)`` rows, numbered as in the course.

    Returns:
        The stack and its output channel count.
    """
    layers: "OrderedDict[str, nn.Module]" = OrderedDict()
    chans, n_conv, n_pool = in_chans, 0, 0
    for kind, f, s, filters in table:
        if kind == "conv":
            n_conv += 1
            layers[f"conv{n_conv}"] = nn.Conv2d(chans, filters, f, stride=s)
            layers[f"relu{n_conv}"] = nn.ReLU(inplace=True)
            chans = filters
        else:
            n_pool += 1
            layers[f"pool{n_pool}"] = nn.MaxPool2d(f, s)
    return nn.Sequential(layers), chans


class CourseLeNetExample(Backbone):
    """Week 1's example network. ``forward_features`` ends at POOL2 (16×5×5); ``pre_logits``
    flattens and applies FC3 and FC4, so ``num_features`` is 84. Fixed 32×32 input.

    Args:
        num_classes: size of the softmax layer (10 in the course).
        in_chans: input channels (3 in the course).
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 3):
        super().__init__()
        self.num_classes = num_classes
        self.features, chans = _conv_stack(_LENET_EXAMPLE_CONVS, in_chans)
        fcs: "OrderedDict[str, nn.Module]" = OrderedDict(flatten=nn.Flatten())
        width = chans * 5 * 5
        for i, out in enumerate(_LENET_EXAMPLE_FCS, start=3):
            fcs[f"fc{i}"] = nn.Linear(width, out)
            fcs[f"relu{i}"] = nn.ReLU(inplace=True)
            width = out
        self.pre_logits = nn.Sequential(fcs)
        self.num_features = width
        self.head = nn.Linear(width, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.pre_logits(x)


class Course39x39Example(Backbone):
    """Week 1's "Example ConvNet": three valid convolutions, then the 7×7×40 volume is unrolled
    into 1,960 units that feed the logistic/softmax unit (``num_features`` = 1,960). Fixed 39×39 input.

    Args:
        num_classes: outputs of the final unit (2: the course's cat / not-cat).
        in_chans: input channels (3 in the course).
    """

    def __init__(self, num_classes: int = 2, in_chans: int = 3):
        super().__init__()
        self.num_classes = num_classes
        self.features, chans = _conv_stack(_39X39_EXAMPLE_CONVS, in_chans)
        self.num_features = chans * 7 * 7
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(x, 1)


class CostExample(Backbone):
    """A bare block from a cost comparison; ``num_features`` is its output channel count and
    ``forward_head`` global-average-pools (the Backbone default) before the optional classifier."""

    def __init__(self, block: nn.Sequential, out_chans: int, num_classes: int = 0):
        super().__init__()
        self.block = block
        self.num_features = out_chans
        self.reset_classifier(num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


@register_model("course_lenet_example", input_size=(3, 32, 32))
def course_lenet_example(num_classes: int = 10, in_chans: int = 3) -> CourseLeNetExample:
    return CourseLeNetExample(num_classes=num_classes, in_chans=in_chans)


@register_model("course_39x39_example", input_size=(3, 39, 39))
def course_39x39_example(num_classes: int = 2, in_chans: int = 3) -> Course39x39Example:
    return Course39x39Example(num_classes=num_classes, in_chans=in_chans)


@register_model("course_inception_naive_5x5", input_size=(192, 28, 28))
def course_inception_naive_5x5(num_classes: int = 0, in_chans: int = 192) -> CostExample:
    """32 "same" 5×5 filters on 28×28×192: 28·28·32 × 5·5·192 = 120,422,400 multiplications."""
    block = nn.Sequential(OrderedDict(conv5x5=nn.Conv2d(in_chans, 32, 5, padding=2), relu=nn.ReLU(inplace=True)))
    return CostExample(block, 32, num_classes)


@register_model("course_inception_bottleneck_5x5", input_size=(192, 28, 28))
def course_inception_bottleneck_5x5(num_classes: int = 0, in_chans: int = 192) -> CostExample:
    """1×1 to 16 channels, then 32 "same" 5×5 filters: 28·28·16 × 192 = 2,408,448
    plus 28·28·32 × 5·5·16 = 10,035,200, i.e. 12,443,648 multiplications."""
    block = nn.Sequential(OrderedDict(
        conv1x1=nn.Conv2d(in_chans, 16, 1), relu1=nn.ReLU(inplace=True),
        conv5x5=nn.Conv2d(16, 32, 5, padding=2), relu2=nn.ReLU(inplace=True),
    ))
    return CostExample(block, 32, num_classes)


# MobileNet's comparison counts filter multiplications only: no bias (BN follows in MobileNet)
# and no activation between the two steps of the separable convolution.

@register_model("course_normal_conv_example", input_size=(3, 6, 6))
def course_normal_conv_example(num_classes: int = 0, in_chans: int = 3) -> CostExample:
    """5 filters of 3×3×3 on 6×6×3: 4·4·5 × 3·3·3 = 2,160 multiplications."""
    return CostExample(nn.Sequential(OrderedDict(conv=nn.Conv2d(in_chans, 5, 3, bias=False))), 5, num_classes)


@register_model("course_depthwise_separable_example", input_size=(3, 6, 6))
def course_depthwise_separable_example(num_classes: int = 0, in_chans: int = 3) -> CostExample:
    """Depthwise 3×3 per channel (4·4·3 × 3·3 = 432) then pointwise 1×1×3, 5 filters
    (4·4·5 × 3 = 240): 672 multiplications."""
    block = nn.Sequential(OrderedDict(
        depthwise=nn.Conv2d(in_chans, in_chans, 3, groups=in_chans, bias=False),
        pointwise=nn.Conv2d(in_chans, 5, 1, bias=False),
    ))
    return CostExample(block, 5, num_classes)
