"""The per-layer cost table against the course's worked numbers, direct formulas and torch's own counter."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.models import create_model, default_input_size, list_models
from cnnlab.summary import format_summary, parse_input_shape, summarize


def _conv_out(n: int, f: int, s: int = 1, p: int = 0) -> int:
    """The course's floor((n + 2p - f) / s) + 1."""
    return (n + 2 * p - f) // s + 1


def _model_summary(name: str, **kwargs):
    return summarize(create_model(name, **kwargs), default_input_size(name))


def test_lenet_example_reproduces_course_table():
    rows = _model_summary("course_lenet_example").layer_rows(compact=True)
    # Course table: Input, CONV1, POOL1, CONV2, POOL2, FC3, FC4, Softmax.
    assert [r.kind for r in rows] == ["Input", "Conv2d", "MaxPool2d", "Conv2d", "MaxPool2d", "Linear", "Linear", "Linear"]
    assert [r.activation_size for r in rows] == [3072, 6272, 1568, 1600, 400, 120, 84, 10]
    assert [r.params for r in rows] == [0, 608, 0, 3216, 0, 48120, 10164, 850]
    # The course's formula: (f·f·n_c[l-1] + 1)·n_c[l], and n_in·n_out + n_out for FC layers.
    assert rows[1].params == (5 * 5 * 3 + 1) * 8 and rows[3].params == (5 * 5 * 8 + 1) * 16
    assert rows[5].params == 400 * 120 + 120
    assert [r.output_shape for r in rows[:5]] == [(3, 32, 32), (8, 28, 28), (8, 14, 14), (16, 10, 10), (16, 5, 5)]


def test_39x39_example_shapes():
    s = _model_summary("course_39x39_example")
    convs = [r for r in s.rows if r.kind == "Conv2d"]
    assert [r.output_shape for r in convs] == [(10, 37, 37), (20, 17, 17), (40, 7, 7)]
    n1 = _conv_out(39, 3, 1)
    n2 = _conv_out(n1, 5, 2)
    n3 = _conv_out(n2, 5, 2)
    assert (n1, n2, n3) == (37, 17, 7)
    assert convs[-1].activation_size == 1960 == create_model("course_39x39_example").num_features
    assert s.rows[-1].output_shape == (2,)  # logistic/softmax unit on the 1,960 unrolled values


def test_inception_bottleneck_cost():
    naive = _model_summary("course_inception_naive_5x5")
    bottle = _model_summary("course_inception_bottleneck_5x5")
    assert naive.total_macs == 28 * 28 * 32 * 5 * 5 * 192 == 120_422_400
    convs = [r.macs for r in bottle.rows if r.kind == "Conv2d"]
    assert convs == [28 * 28 * 16 * 192, 28 * 28 * 32 * 5 * 5 * 16] == [2_408_448, 10_035_200]
    assert bottle.total_macs == 12_443_648
    for s in (naive, bottle):
        assert s.layer_rows(compact=True)[-1].output_shape == (32, 28, 28)


def test_depthwise_separable_cost():
    normal = _model_summary("course_normal_conv_example")
    separable = _model_summary("course_depthwise_separable_example")
    assert normal.total_macs == (3 * 3 * 3) * (4 * 4) * 5 == 2160
    assert [r.macs for r in separable.rows if r.kind == "Conv2d"] == [432, 240]
    assert separable.total_macs == 672
    # The course's ratio 1/n_c' + 1/f² (n_c' = 5 output channels, f = 3).
    assert separable.total_macs / normal.total_macs == pytest.approx(1 / 5 + 1 / 9)


def test_cost_examples_take_a_classifier_when_asked():
    model = create_model("course_depthwise_separable_example", num_classes=4)
    assert model(torch.randn(2, 3, 6, 6)).shape == (2, 4)
    assert create_model("course_inception_naive_5x5", in_chans=8)(torch.randn(1, 8, 28, 28)).shape == (1, 32)


@pytest.mark.parametrize("name", ["lenet5", "resnet18", "course_lenet_example"])
def test_rows_account_for_every_parameter(name):
    if name not in list_models():
        pytest.skip(f"{name} is not registered yet")
    model = create_model(name)
    s = summarize(model, default_input_size(name))
    expected = sum(p.numel() for p in model.parameters())
    assert sum(r.params for r in s.rows) == expected
    assert s.total_params == expected and s.unlisted_params == 0


class _Mixed(nn.Module):
    """Grouped/1-D/3-D/transposed convolutions, a reused layer, tied weights and a loose parameter."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, groups=2, padding=1)
        self.up = nn.ConvTranspose2d(8, 6, 3, stride=2, groups=2)
        self.act = nn.ReLU()
        self.fc = nn.Linear(6 * 15 * 15, 5)
        self.fc_tied = nn.Linear(5, 5)
        self.fc_tied2 = nn.Linear(5, 5)
        self.fc_tied2.weight = self.fc_tied.weight
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        x = self.act(self.up(self.act(self.conv(x))))
        x = self.fc(x.flatten(1))
        return self.fc_tied2(self.fc_tied(x)) * self.scale


def _torch_flops(model: nn.Module, shape) -> int:
    with FlopCounterMode(display=False) as counter:
        model(torch.randn(1, *shape))
    return counter.get_total_flops()


@pytest.mark.parametrize("model, shape", [
    (_Mixed(), (4, 7, 7)),
    (nn.Sequential(nn.Conv1d(2, 4, 3), nn.Conv1d(4, 4, 3, groups=4, dilation=2)), (2, 20)),
    (nn.Sequential(nn.Conv3d(2, 4, 3, stride=2), nn.ConvTranspose3d(4, 2, 2, stride=2)), (2, 9, 9, 9)),
])
def test_macs_match_torch_flop_counter(model, shape):
    # torch counts 2 FLOPs per multiply-add for convolutions and matrix products.
    assert 2 * summarize(model, shape).total_macs == _torch_flops(model, shape)


def test_shared_layers_and_loose_parameters():
    model = _Mixed().train()
    s = summarize(model, (4, 7, 7))
    assert model.training  # restored after the eval-mode trace
    relus = [r for r in s.rows if r.name == "act"]
    assert len(relus) == 2 and relus[0].output_shape == (8, 7, 7) and relus[1].output_shape == (6, 15, 15)
    tied = {r.name: r.params for r in s.rows if r.name.startswith("fc_tied")}
    assert tied == {"fc_tied": 30, "fc_tied2": 5}  # the shared weight is counted once
    assert s.unlisted_params == 1  # ``scale`` sits on the container
    assert s.total_params == sum(p.numel() for p in model.parameters())


def test_parse_input_shape():
    assert parse_input_shape("3x32x32") == (3, 32, 32)
    assert parse_input_shape("1×16") == (1, 16)
    assert parse_input_shape("3,8,32,32") == (3, 8, 32, 32)
    for bad in ("32", "3x0x4", "3xax4", "1x2x3x4x5"):
        with pytest.raises(ValueError):
            parse_input_shape(bad)


def test_format_summary_table():
    s = _model_summary("course_lenet_example")
    compact = format_summary(s, title="course_lenet_example").splitlines()
    full = format_summary(s, compact=False).splitlines()
    assert compact[0] == "course_lenet_example"
    assert "Activation shape" in compact[1] and "# parameters" in compact[1]
    assert not any("ReLU" in line for line in compact) and any("ReLU" in line for line in full)
    conv2 = next(line for line in compact if "features.conv2" in line)
    assert [c.strip() for c in conv2.split("|")] == ["features.conv2", "Conv2d", "16×10×10", "1,600", "3,216", "320,000"]
    # Columns line up: every table line has its separators at the same offsets.
    table = [line for line in compact if "|" in line]
    assert len({tuple(i for i, ch in enumerate(line) if ch == "|") for line in table}) == 1
    assert "Total params: 62,958" in "\n".join(compact)
