"""Model zoo, part 2: GoogLeNet (Inception v1), MobileNet v1/v2, EfficientNet B0–B7.

Exactness is checked against torchvision: parameter counts, BN settings and stochastic-depth
rates, and identical outputs (eval, and GoogLeNet's train-mode auxiliary outputs) after a weight
import. Heavy models are built on the meta device where only shapes matter, and filled cheaply
(uniform) where values matter, so the whole file stays fast.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torchvision.models as tvm
from omegaconf import OmegaConf
from torchvision.ops import stochastic_depth

from cnnlab.models import create_model, default_input_size, get_entry
from cnnlab.tasks.fit import model_kwargs
from cnnlab.models.convert import load_torchvision_weights, remap_torchvision_state_dict
from cnnlab.models.efficientnet import (
    ALPHA, BETA, EFFICIENTNET_B0_TABLE, EFFICIENTNET_VARIANTS, GAMMA, EfficientNet, MBConv, StochasticDepth,
    compound_scaling, scaling_table,
)
from cnnlab.models.inception import GOOGLENET_TABLE, GoogLeNetOutputs, Inception
from cnnlab.models.mobilenet import MOBILENET_V1_TABLE, MOBILENET_V2_TABLE, InvertedResidual

EFFNETS = [f"efficientnet_{v}" for v in EFFICIENTNET_VARIANTS]
TV_MODELS = ["googlenet", "mobilenet_v2", *EFFNETS]
OWN_MODELS = ["googlenet", "mobilenet_v1", "mobilenet_v2", *EFFNETS]
CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "model"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: these nets run hundreds of tiny ops, where thread hand-offs dominate
    (a 5× slowdown on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _tv(name: str, **kwargs) -> nn.Module:
    """torchvision's model in the configuration the registry names (``tv_kwargs``), plus overrides."""
    return getattr(tvm, name)(weights=None, **{**get_entry(name).default_cfg.get("tv_kwargs", {}), **kwargs})


@torch.no_grad()
def _randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Fill every parameter and BN buffer with non-trivial values (cheaper than the real init).

    Weights get variance 1/fan_in so activations stay O(1) through 100+ layers; BN running
    statistics are randomised too, so a mis-mapped buffer or a wrong BN eps changes the outputs.
    """
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            bound = (3.0 / m.weight[0].numel()) ** 0.5
            m.weight.uniform_(-bound, bound, generator=gen)
            if m.bias is not None:
                m.bias.uniform_(-0.1, 0.1, generator=gen)
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5, generator=gen)
            m.bias.uniform_(-0.1, 0.1, generator=gen)
            m.running_mean.uniform_(-0.1, 0.1, generator=gen)
            m.running_var.uniform_(0.5, 1.5, generator=gen)
            m.num_batches_tracked.zero_()
    return model


def _pair(name: str, **kwargs) -> tuple[nn.Module, nn.Module]:
    """(torchvision model with random weights, our model loaded from its state dict)."""
    with torch.device("meta"):
        theirs = _tv(name, **kwargs)
        ours = create_model(name, **kwargs)
    theirs = _randomise(theirs.to_empty(device="cpu"))
    return theirs, load_torchvision_weights(ours.to_empty(device="cpu"), theirs.state_dict())


def _macs(model: nn.Module, x: torch.Tensor) -> dict[nn.Module, int]:
    """Multiplications per Conv2d/Linear for input ``x`` (shapes only; works on the meta device)."""
    macs: dict[nn.Module, int] = {}

    def hook(m, _, out):
        macs[m] = out[0].numel() * m.weight[0].numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return macs


# --- exactness against torchvision -------------------------------------------------------------------


@pytest.mark.parametrize("name", TV_MODELS)
def test_parameter_count_state_dict_and_settings_equal_torchvision(name):
    with torch.device("meta"):
        ours = create_model(name, num_classes=1000, in_chans=3)
        theirs = _tv(name)
    assert get_entry(name).default_cfg["torchvision"] == name
    assert _n_params(ours) == _n_params(theirs)
    remapped = remap_torchvision_state_dict(name, theirs.state_dict())
    assert {k: v.shape for k, v in remapped.items()} == {k: v.shape for k, v in ours.state_dict().items()}
    # Values the state dict does not carry: BN eps/momentum (B5–B7 differ), stochastic-depth rates.
    bn = lambda m: [(b.eps, b.momentum) for b in m.modules() if isinstance(b, nn.BatchNorm2d)]  # noqa: E731
    assert bn(ours) == bn(theirs)
    sd = lambda m: [b.p for b in m.modules() if type(b).__name__ == "StochasticDepth"]  # noqa: E731
    assert sd(ours) == sd(theirs)


@pytest.mark.parametrize("name", TV_MODELS)
def test_torchvision_weights_give_identical_outputs(name):
    theirs, ours = _pair(name)
    theirs.eval(), ours.eval()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    assert expected.shape == (1, 1000) and expected.std() > 1e-3  # a non-degenerate comparison
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_googlenet_train_mode_aux_outputs_and_transform_input_match_torchvision():
    theirs, ours = _pair("googlenet")
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    for transform in (False, True):
        theirs.transform_input = ours.transform_input = transform
        outs = []
        for model in (theirs, ours):
            torch.manual_seed(3)  # same dropout masks: the aux heads must run in torchvision's order
            outs.append(model.train()(x))
        assert isinstance(outs[1], GoogLeNetOutputs) and outs[1]._fields == outs[0]._fields
        for got, expected in zip(outs[1], outs[0]):
            assert got.shape == (2, 1000)
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
        with torch.no_grad():
            torch.testing.assert_close(ours.eval()(x), theirs.eval()(x), rtol=0, atol=1e-6)


def test_googlenet_without_aux_takes_the_pretrained_layout():
    """torchvision's pretrained GoogLeNet file has no aux1/aux2 keys: it fits ``aux_logits=False``."""
    theirs, ours = _pair("googlenet", aux_logits=False)
    assert not any(k.startswith("aux") for k in theirs.state_dict())
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    outs = []
    with torch.no_grad():
        for model in (theirs, ours):
            torch.manual_seed(5)  # same dropout mask
            outs.append(model.train()(x))
    assert isinstance(outs[1], torch.Tensor)  # no auxiliary outputs, even in train mode
    torch.testing.assert_close(outs[1], outs[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("width_mult", [0.5, 1.4])
def test_mobilenet_v2_width_multiplier_matches_torchvision(width_mult):
    with torch.device("meta"):
        ours = create_model("mobilenet_v2", width_mult=width_mult)
        theirs = tvm.mobilenet_v2(weights=None, width_mult=width_mult)
    assert ours.num_features == theirs.last_channel
    assert _n_params(ours) == _n_params(theirs)


# --- the registry contract ---------------------------------------------------------------------------


def _logits_loss(out) -> torch.Tensor:
    if isinstance(out, GoogLeNetOutputs):  # the paper weights the auxiliary losses by 0.3
        return out.logits.square().mean() + 0.3 * (out.aux_logits1.square().mean() + out.aux_logits2.square().mean())
    return out.square().mean()


@pytest.mark.parametrize("name", OWN_MODELS)
def test_forward_backward_and_classifier_contract(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, in_chans=2)
    x = torch.randn(2, 2, 32, 32)
    out = model(x)
    logits = out.logits if isinstance(out, GoogLeNetOutputs) else out
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    _logits_loss(out).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())

    model.eval()
    with torch.no_grad():
        feats = model.forward_head(model.forward_features(x), pre_logits=True)
        assert feats.shape == (2, model.num_features)
        torch.testing.assert_close(model.head(feats), model(x))  # the head is all that follows pre_logits
        model.reset_classifier(5)
        assert model(x).shape == (2, 5)
        model.reset_classifier(0)
        torch.testing.assert_close(model(x), feats)


@pytest.mark.parametrize("name", OWN_MODELS)
def test_default_input_size_and_num_classes_zero_give_features(name):
    """Shapes only, on the meta device: every model runs at its registered input size."""
    size = default_input_size(name)
    if name.startswith("efficientnet"):
        assert size == (3, EFFICIENTNET_VARIANTS[name[-2:]][2], EFFICIENTNET_VARIANTS[name[-2:]][2])
    with torch.device("meta"):
        model = create_model(name, num_classes=0).eval()
        x = torch.empty(2, *size)
        assert model(x).shape == (2, model.num_features)
        model.reset_classifier(3)
        assert model(x).shape == (2, 3)


@pytest.mark.parametrize("name", OWN_MODELS)
def test_model_config_instantiates(name):
    """conf/model/<name>.yaml builds its model the way the stages do (tasks.fit.model_kwargs)."""
    cfg = OmegaConf.load(CONF_DIR / f"{name}.yaml")
    assert cfg.name == name and "num_classes" not in cfg and "in_chans" not in cfg
    with torch.device("meta"):
        model = create_model(name, num_classes=4, in_chans=1, **model_kwargs(OmegaConf.create({"model": cfg})))
    assert model.arch_name == name and model.head.out_features == 4


@pytest.mark.parametrize("name, side", [("googlenet", 4), ("mobilenet_v1", 2), ("mobilenet_v2", 2),
                                        ("efficientnet_b0", 2)])
def test_small_input_stem_keeps_resolution(name, side):
    with torch.device("meta"):
        for small, expected in ((False, 1), (True, side)):
            model = create_model(name, small_input=small)
            assert model.forward_features(torch.empty(2, 3, 32, 32)).shape[-2:] == (expected, expected)


# --- GoogLeNet: the course's Inception numbers ----------------------------------------------------------


def test_inception_module_concatenates_branches_28x28x192_to_256():
    block = Inception(192, 64, 96, 128, 16, 32, 32)  # inception (3a), the course's example
    out = block(torch.randn(1, 192, 28, 28))
    assert out.shape == (1, 64 + 128 + 32 + 32, 28, 28) == (1, 256, 28, 28)
    widths = [b(torch.randn(1, 192, 28, 28)).shape[1] for b in (block.branch1, block.branch2, block.branch3,
                                                                 block.branch4)]
    assert widths == [64, 128, 32, 32]


def test_bottleneck_cuts_the_5x5_cost_from_120m_to_12_4m():
    x = torch.empty(1, 192, 28, 28, device="meta")
    direct = _macs(nn.Conv2d(192, 32, 5, padding=2, device="meta"), x)
    assert sum(direct.values()) == 28 * 28 * 32 * 5 * 5 * 192 == 120_422_400
    with torch.device("meta"):
        block = Inception(192, 64, 96, 128, 16, 32, 32, kernel_5x5=5)
    reduce, conv5 = (c.conv for c in block.branch3)
    macs = _macs(block, x)
    assert (macs[reduce], macs[conv5]) == (28 * 28 * 16 * 192, 28 * 28 * 32 * 5 * 5 * 16)  # 2.4 M + 10.0 M
    assert abs(macs[reduce] + macs[conv5] - 12.4e6) < 0.05e6


def test_paper_5x5_adds_exactly_the_wider_kernels():
    with torch.device("meta"):
        tv_like, paper = create_model("googlenet"), create_model("googlenet", paper_5x5=True)
    extra = sum((25 - 9) * row[3] * row[4] for _, kind, row in GOOGLENET_TABLE if kind == "inception")
    assert _n_params(paper) - _n_params(tv_like) == extra


def test_googlenet_aux_heads_follow_mode_and_classifier():
    model = create_model("googlenet", num_classes=4, small_input=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 4)
        model.reset_classifier(6)
        out = model.train()(x)
        assert [t.shape for t in out] == [(2, 6)] * 3
        model.reset_classifier(0)  # features only: the auxiliary heads go too
        assert model.aux1 is None and model(x).shape == (2, 1024)
        assert create_model("googlenet", aux_logits=False).train()(torch.randn(2, 3, 32, 32)).shape == (2, 1000)


# --- MobileNet -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha, paper_millions", [(1.0, 4.2), (0.75, 2.6), (0.5, 1.3), (0.25, 0.5)])
def test_mobilenet_v1_parameters_match_the_paper(alpha, paper_millions):
    """Howard et al. 2017, Table 6; α=1 is also Keras' MobileNet (4,231,976 trainable parameters)."""
    with torch.device("meta"):
        n = _n_params(create_model("mobilenet_v1", width_mult=alpha))
    assert round(n / 1e6, 1) == paper_millions
    if alpha == 1.0:
        assert n == 4_231_976


def test_mobilenet_v1_depthwise_separable_cost_is_1_over_nc_plus_1_over_f2():
    with torch.device("meta"):
        model = create_model("mobilenet_v1").eval()
        x = model.features[0](torch.empty(1, 3, 224, 224))
        blocks = list(model.features)[1:]
        assert len(blocks) == len(MOBILENET_V1_TABLE) == 13
        for block, (c, s) in zip(blocks, MOBILENET_V1_TABLE):
            dw, pw = block.dw[0], block.pw[0]
            assert dw.groups == dw.in_channels and dw.stride == (s, s) and pw.out_channels == c
            macs = _macs(block, x)
            normal = sum(_macs(nn.Conv2d(dw.in_channels, c, 3, s, 1), x).values())  # same output, one conv
            assert (macs[dw] + macs[pw]) / normal == pytest.approx(1 / c + 1 / 9)
            x = block(x)
    assert x.shape == (1, 1024, 7, 7)


def test_mobilenet_v2_has_17_bottlenecks_with_residuals_where_shapes_allow():
    with torch.device("meta"):
        model = create_model("mobilenet_v2")
    blocks = [m for m in model.modules() if isinstance(m, InvertedResidual)]
    assert len(blocks) == sum(n for _, _, n, _ in MOBILENET_V2_TABLE) == 17
    # every repeat after the first keeps stride 1 and the width; first repeats change one of them
    assert sum(b.use_res_connect for b in blocks) == sum(n - 1 for _, _, n, _ in MOBILENET_V2_TABLE)


def test_inverted_residual_projection_is_linear_and_skip_adds_input():
    block = InvertedResidual(24, 24, 1, 6).eval()
    x = torch.randn(2, 24, 8, 8)
    with torch.no_grad():
        expand, dw, project, bn = block.conv
        assert expand[0].out_channels == 144 and dw[0].groups == 144
        # no activation after the projection: negative outputs survive
        assert (block.conv(x) < 0).any()
        bn.weight.zero_(), bn.bias.zero_()
        torch.testing.assert_close(block(x), x)  # with the branch silenced, the skip is the identity


# --- EfficientNet -------------------------------------------------------------------------------------


def _total_macs(model: nn.Module, resolution: int) -> int:
    return sum(_macs(model.eval(), torch.empty(1, 3, resolution, resolution, device="meta")).values())


def test_compound_scaling_doubles_flops_per_unit_phi():
    """α·β²·γ² ≈ 2: one step of φ about doubles the multiply-adds (paper, Eq. 3)."""
    assert ALPHA * BETA ** 2 * GAMMA ** 2 == pytest.approx(2.0, rel=0.05)
    totals = []
    for phi in range(5):
        width, depth, res = compound_scaling(phi)
        with torch.device("meta"):
            model = EfficientNet(width_mult=width, depth_mult=depth)
        totals.append(_total_macs(model, round(res)))
        stages = [len(s) for s in list(model.features)[1:-1]]
        assert stages == [math.ceil(n * depth) for *_, n in EFFICIENTNET_B0_TABLE]
    # ceil() on the repeat counts makes single steps uneven (φ 0→1 is ×2.6); the trend is ×2 per step
    assert (totals[4] / totals[0]) ** (1 / 4) == pytest.approx(2.0, rel=0.05)


# Tan & Le 2019, Table 2: parameters (M) and FLOPs (billions of multiply-adds) of B0–B7.
PAPER_TABLE_2 = {"b0": (5.3, 0.39), "b1": (7.8, 0.70), "b2": (9.2, 1.0), "b3": (12, 1.8),
                 "b4": (19, 4.2), "b5": (30, 9.9), "b6": (43, 19), "b7": (66, 37)}


@pytest.mark.parametrize("variant", list(EFFICIENTNET_VARIANTS))
def test_efficientnet_size_and_flops_match_the_paper(variant):
    with torch.device("meta"):
        model = create_model(f"efficientnet_{variant}")
    params, flops = PAPER_TABLE_2[variant]
    assert _n_params(model) / 1e6 == pytest.approx(params, rel=0.03)
    assert _total_macs(model, default_input_size(f"efficientnet_{variant}")[1]) / 1e9 == pytest.approx(flops, rel=0.05)


def test_published_variants_follow_phi_loosely():
    rows = scaling_table()
    assert [r["variant"] for r in rows] == [f"b{k}" for k in range(8)]
    assert (rows[0]["rule_width"], rows[0]["rule_depth"], rows[0]["rule_resolution"]) == (1.0, 1.0, 224.0)
    for key in ("phi_width", "phi_depth", "phi_resolution"):
        implied = [r[key] for r in rows]
        assert implied[0] == 0 and implied == sorted(implied)  # every dimension grows with the variant
    b7 = rows[7]  # B7 = φ 7: width and resolution close to the rule, depth rounded well below 1.2^7
    assert b7["rule_width"] == pytest.approx(b7["width"], rel=0.05)
    assert b7["rule_resolution"] == pytest.approx(b7["resolution"], rel=0.05)


def test_stochastic_depth_matches_torchvision_and_drops_whole_samples():
    x = torch.randn(64, 4, 3, 3)
    layer = StochasticDepth(0.5)
    torch.manual_seed(5)
    got = layer(x)
    torch.manual_seed(5)
    torch.testing.assert_close(got, stochastic_depth(x, 0.5, "row", training=True), rtol=0, atol=0)
    kept = got.flatten(1).abs().sum(1) > 0
    assert 0 < kept.sum() < 64  # some samples dropped entirely, the rest scaled by 1/(1-p)
    torch.testing.assert_close(got[kept], 2 * x[kept])
    assert layer.eval()(x) is x


def test_mbconv_squeeze_excitation_widths():
    block = MBConv(40, 80, 3, 2, 6, 0.1, nn.BatchNorm2d)
    se = block.block[2]
    assert (se.fc1.in_channels, se.fc1.out_channels) == (240, 10)  # expanded 40·6; squeeze 40 // 4
    assert not block.use_res_connect
