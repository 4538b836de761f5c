"""U-Net: the course's shapes and parameter count, the paper's 572 → 388, the baselines, the size formula."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from cnnlab.models import create_model, get_entry
from cnnlab.models.unet import ConvBlock, UpsamplingBlock, paper_output_size
from cnnlab.ops import conv_transpose_output_size
from cnnlab.ops.cost import conv_params


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("n, f, p, s, op", [(12, 3, 1, 2, 1), (12, 3, 0, 2, 0), (7, 2, 0, 2, 0), (5, 4, 1, 3, 2),
                                            (1, 1, 0, 1, 0), (30, 5, 2, 1, 0)])
def test_conv_transpose_output_size_matches_torch(n, f, p, s, op):
    layer = nn.ConvTranspose2d(1, 1, f, stride=s, padding=p, output_padding=op)
    assert layer(torch.zeros(1, 1, n, n)).shape[-1] == conv_transpose_output_size(n, f, p, s, op)


def test_conv_transpose_output_size_rejects_bad_arguments():
    with pytest.raises(ValueError, match="output_padding"):
        conv_transpose_output_size(4, 3, 1, 2, 2)
    with pytest.raises(ValueError, match="removes the whole output"):
        conv_transpose_output_size(1, 1, 1, 1)


def test_course_blocks():
    block = ConvBlock(3, 32, dropout=0.3)
    nxt, skip = block(torch.randn(2, 3, 96, 128))
    assert skip.shape == (2, 32, 96, 128) and nxt.shape == (2, 32, 48, 64)
    bottom = ConvBlock(256, 512, max_pooling=False).eval()
    nxt, skip = bottom(torch.randn(1, 256, 6, 8))
    assert nxt is skip and nxt.shape == (1, 512, 6, 8)
    up = UpsamplingBlock(512, 256, 256)
    assert up.up.kernel_size == (3, 3) and up.up.stride == (2, 2)
    assert up(torch.randn(1, 512, 6, 8), torch.randn(1, 256, 12, 16)).shape == (1, 256, 12, 16)
    # He initialisation: weight variance 2 / fan_in, zero biases
    conv = bottom.convs[0]
    assert conv.bias.abs().max() == 0
    assert conv.weight.var().item() == pytest.approx(2 / (256 * 9), rel=0.05)


def test_course_unet_shapes_and_parameter_count():
    model = create_model("unet")  # the assignment's n_classes=23 (CARLA)
    assert model(torch.zeros(1, 3, 96, 128)).shape == (1, 23, 96, 128)
    assert _n_params(model) == 8_640_471  # the assignment's model.summary() total
    widths = [b.convs[0].out_channels for b in model.down]
    assert widths == [32, 64, 128, 256, 512]
    drops = [b.dropout.p if isinstance(b.dropout, nn.Dropout) else 0.0 for b in model.down]
    assert drops == [0, 0, 0, 0.3, 0.3]
    assert isinstance(model.down[-1].pool, nn.Identity)
    model.reset_classifier(5)
    assert model(torch.zeros(2, 3, 32, 48)).shape == (2, 5, 32, 48)


def test_paper_unet_572_to_388():
    assert paper_output_size(572) == 388
    narrow = create_model("unet_paper", n_filters=4)  # the width does not change the sizes
    assert narrow(torch.zeros(1, 1, 572, 572)).shape == (1, 2, 388, 388)
    with pytest.raises(ValueError, match="cannot be max-pooled"):
        paper_output_size(570)


def test_paper_unet_parameter_count_is_the_figure_1_sum():
    convs = [(1, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512), (512, 512),
             (512, 1024), (1024, 1024)]
    expected = sum(conv_params(3, c_in, c_out) for c_in, c_out in convs)
    for c in (1024, 512, 256, 128):  # 2×2 up-conv halving the channels, then two 3×3 convs
        expected += conv_params(2, c, c // 2) + conv_params(3, c, c // 2) + conv_params(3, c // 2, c // 2)
    expected += conv_params(1, 64, 2)
    with torch.device("meta"):
        assert _n_params(create_model("unet_paper")) == expected


def test_encoder_decoder_has_no_skips():
    model = create_model("encoder_decoder", num_classes=4)
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 4, 32, 32)
    assert [b.convs[0].in_channels for b in model.up] == [256, 128, 64, 32]  # no concatenation


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenet_v2"])
def test_zoo_backbone_unet(backbone):
    model = create_model("unet_backbone", backbone=backbone, num_classes=3)
    out = model(torch.zeros(2, 3, 96, 128))
    assert out.shape == (2, 3, 96, 128)
    assert len(model.taps) == 5  # strides 2, 4, 8, 16, 32
    out.sum().backward()
    assert all(p.grad is not None for p in model.encoder.parameters() if p.requires_grad)


def test_registered_as_segmentation_models():
    for name in ("unet", "unet_paper", "encoder_decoder", "unet_backbone"):
        assert get_entry(name).default_cfg["task"] == "segmentation"


def test_classifier_training_refuses_a_segmentation_model(hydra_cfg):
    from cnnlab.tasks.fit import input_hw

    with pytest.raises(ValueError, match="train_segmenter"):
        input_hw(hydra_cfg("model=unet"))


def test_summary_cli_prints_the_course_table():
    res = subprocess.run([sys.executable, "-m", "cnnlab.cli", "summary", "unet", "--input", "3x96x128"],
                         capture_output=True, text=True, check=True)
    assert "Total params: 8,640,471" in res.stdout
    assert "23×96×128" in res.stdout and "ConvTranspose2d" in res.stdout


def test_valid_convolution_output_is_mirrored_to_the_input_size():
    from cnnlab.segment.module import center_crop_target, predict_logits

    model = create_model("unet_paper", n_filters=2, in_chans=3, num_classes=3).eval()
    x = torch.rand(1, 3, 188, 188)
    assert model(x).shape[-2:] == (4, 4)  # 188 → 4: the paper's arithmetic, 184 pixels of context
    with torch.no_grad():
        assert predict_logits(model, x).shape == (1, 3, 188, 188)
    target = torch.arange(188 * 188).reshape(1, 188, 188)
    assert torch.equal(center_crop_target(target, (4, 4)), target[:, 92:96, 92:96])
