"""Receptive fields computed from the architecture equal the brute-force ones (non-zero input gradient)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnlab.inside.receptive import Field1d, gradient_box, module, trace_fields
from cnnlab.models import create_model


def _positive(model: nn.Module) -> nn.Module:
    """Positive weights, zero biases, average pools: every path from a pixel to a unit adds, so the
    gradient is non-zero exactly on the receptive field (max-pooling would pick one pixel)."""
    for name, m in list(model.named_modules()):
        for cname, child in list(m.named_children()):
            if isinstance(child, nn.MaxPool2d):
                setattr(m, cname, nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                               ceil_mode=child.ceil_mode, count_include_pad=True))
    with torch.no_grad():
        for p_name, p in model.named_parameters():
            # ~1/fan-in keeps tanh out of saturation, where its gradient would round to zero
            scale = p[0].numel() if p.ndim > 1 else 1
            p.copy_((torch.rand_like(p) + 0.5) / scale if not p_name.endswith("bias") else torch.zeros_like(p))
    return model.double().eval()


class Dilated(nn.Module):
    """Padding, stride, dilation, a reflect-padded conv and a two-branch sum with different fields."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=2, dilation=2)
        self.c = nn.Conv2d(4, 4, 5, padding=2, padding_mode="reflect")
        self.skip = nn.Conv2d(4, 4, 1)
        self.pool = nn.AvgPool2d(3, stride=2, padding=1)
        self.out = nn.Conv2d(4, 3, 3, stride=1, padding=0, dilation=3)

    def forward(self, x):
        x = torch.tanh(self.a(x))
        x = torch.relu(self.c(self.b(x)) + self.skip(x))
        return self.out(self.pool(x))


def _vgg11():
    model = create_model("vgg11", num_classes=0, in_chans=3)
    model.pre_logits = nn.Identity()  # 100 M FC weights the trunk's fields do not need
    return model


def _dlib():
    from cnnlab.face.models.dlib_resnet import DlibFaceResNet

    model = DlibFaceResNet(input_size=None)
    stem = model.stem  # its functional max-pool, as an average pool of the same window (see _positive)
    stem.forward = lambda x: F.avg_pool2d(F.relu(stem.affine(stem.conv(x))), 3, stride=2, padding=0)
    return model


CASES = [
    ("lenet5", lambda: create_model("lenet5", num_classes=10, in_chans=1), (1, 32, 32),
     ["features.0", "features.2", "features.3", "features.5"], None),
    ("vgg11", _vgg11, (3, 32, 32),
     ["features.0", "features.3", "features.8", "features.15", "features.20"], lambda m: m.forward_features),
    ("resnet18", lambda: create_model("resnet18", num_classes=0, in_chans=3), (3, 40, 40),
     None, lambda m: m.forward_features),
    ("dlib_resnet", _dlib, (3, 72, 72), ["stem.conv", "stem", "level4.0", "level3.0", "level3.1", "level2.0"],
     lambda m: lambda x: m.level2(m.level3(m.level4(m.stem(x))))),
    ("dilated", Dilated, (1, 41, 37), ["a", "b", "c", "pool", "out"], None),
]


def _resnet_layers(model):
    return [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)][::4]


@pytest.mark.parametrize("name,build,shape,layers,fwd", CASES, ids=[c[0] for c in CASES])
def test_field_equals_nonzero_gradient(name, build, shape, layers, fwd):
    torch.manual_seed(0)
    model = _positive(build())
    layers = layers or _resnet_layers(model)
    forward = fwd(model) if fwd else None
    x = torch.rand(1, *shape, dtype=torch.float64) + 0.5
    fields = trace_fields(model, layers, x, forward=forward)
    checked = 0
    for layer in layers:
        field, out_shape = fields[layer]
        h, w = out_shape[2:]
        for i, j in {(0, 0), (h // 2, w // 3), (h - 1, w - 1)}:
            assert field.box(i, j, clip=shape[1:]) == gradient_box(model, layer, x, 0, i, j, forward=forward), \
                (layer, i, j, field)
            checked += 1
    assert checked >= 3 * len(layers) - 2


def test_the_course_arithmetic():
    # conv 5×5 → 2×2 pool → conv 5×5 → 2×2 pool (LeNet-5): fields 5, 6, 14, 16, jumps 1, 2, 2, 4
    f = Field1d(0, 1, 1).through(5, 1, 0)
    assert (f.size, f.jump) == (5, 1)
    f = f.through(2, 2, 0)
    assert (f.size, f.jump) == (6, 2)
    f = f.through(5, 1, 0).through(2, 2, 0)
    assert (f.start, f.size, f.jump) == (0, 16, 4)
    # padding moves the window back, dilation widens it: 3×3 dilated 2 covers 5
    assert Field1d(0, 1, 1).through(3, 1, 2, 2) == Field1d(-2, 1, 5)


def test_unknown_layer_lists_the_real_ones():
    model = create_model("lenet5", num_classes=10, in_chans=1)
    with pytest.raises(KeyError, match="features.0"):
        module(model, "conv9")
