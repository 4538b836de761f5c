"""Model zoo, part 1: AlexNet, VGG, ResNet, NIN and the 1-D/3-D nets.

Exactness is checked against torchvision (parameter counts, state-dict shapes, identical
outputs after a weight import). Heavy models are built on the meta device where only shapes
matter, and filled cheaply (uniform) where values matter, so the whole file stays fast.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torchvision.models as tvm
from omegaconf import OmegaConf

from cnnlab.models import create_model, default_input_size, get_entry
from cnnlab.tasks.fit import model_kwargs
from cnnlab.models.convert import load_torchvision_weights, remap_torchvision_state_dict
from cnnlab.models.nin import Conv1x1
from cnnlab.models.resnet import RESNET_TABLE, Bottleneck

TV_MODELS = ["alexnet", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
             "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
OWN_MODELS = TV_MODELS + ["nin", "conv1d_net", "conv3d_net"]
# A real build + backward costs seconds for the big ones. The fast set keeps one network per
# code path (AlexNet; VGG with BN; BasicBlock and Bottleneck ResNets); the deeper variants differ
# only by their table rows, which the meta-device and torchvision tests cover for every name.
SLOW_BUILD = {"vgg11", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "resnet101", "resnet152"}
CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "model"


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Small convolutions run faster on one thread, and far faster when other jobs share the cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _small_spatial(name: str) -> tuple[int, ...]:
    """The smallest cheap input each architecture accepts (after its channel dim)."""
    return {"conv1d_net": (64,), "conv3d_net": (14, 14, 14), "alexnet": (64, 64)}.get(name, (32, 32))


@torch.no_grad()
def _randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Fill every parameter and BN buffer with non-trivial values (cheaper than the real init).

    Weights get variance 1/fan_in so activations stay O(1) through 150 layers; BN running
    statistics are randomised too, so a mis-mapped buffer would change the outputs.
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
    return model


def _params(names: list[str]) -> list:
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_BUILD else n for n in names]


# --- exactness against torchvision -------------------------------------------------------------


@pytest.mark.parametrize("name", TV_MODELS)
def test_parameter_count_and_state_dict_shapes_equal_torchvision(name):
    with torch.device("meta"):
        ours = create_model(name, num_classes=1000, in_chans=3)
        theirs = getattr(tvm, name)(weights=None)
    assert get_entry(name).default_cfg["torchvision"] == name
    assert _n_params(ours) == _n_params(theirs)
    remapped = remap_torchvision_state_dict(name, theirs.state_dict())
    assert {k: v.shape for k, v in remapped.items()} == {k: v.shape for k, v in ours.state_dict().items()}


@pytest.fixture(scope="module")
def vgg_classifier_state() -> dict[str, torch.Tensor]:
    """One randomised torchvision VGG classifier (identical in every VGG), filled once, shared."""
    with torch.device("meta"):
        classifier = tvm.vgg11(weights=None).classifier
    return _randomise(classifier.to_empty(device="cpu"), seed=2).state_dict()


def _random_torchvision(name: str, request: pytest.FixtureRequest) -> nn.Module:
    with torch.device("meta"):
        theirs = getattr(tvm, name)(weights=None)
    theirs = theirs.to_empty(device="cpu")
    if name.startswith("vgg"):
        # filling 120 M FC weights per variant would dominate the run time; share one fill instead
        _randomise(theirs.features)
        theirs.classifier.load_state_dict(request.getfixturevalue("vgg_classifier_state"), assign=True)
    else:
        _randomise(theirs)
    return theirs.eval()


@pytest.mark.parametrize("name", TV_MODELS)
def test_torchvision_weights_give_identical_outputs(name, request):
    theirs = _random_torchvision(name, request)
    with torch.device("meta"):
        ours = create_model(name)
    ours = load_torchvision_weights(ours.to_empty(device="cpu"), theirs.state_dict()).eval()
    side = 32 if name.startswith("vgg") else 64  # the smallest input each keeps non-degenerate
    x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    assert expected.shape == (1, 1000) and expected.std() > 1e-3  # a non-degenerate comparison
    assert torch.equal(got, expected)  # same ops in the same order: bit-identical


# --- the registry contract -----------------------------------------------------------------------


@pytest.mark.parametrize("name", _params(OWN_MODELS))
def test_forward_backward_and_classifier_contract(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, in_chans=2)
    x = torch.randn(2, 2, *_small_spatial(name))
    out = model(x)
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())

    model.eval()
    with torch.no_grad():
        feats = model.forward_head(model.forward_features(x), pre_logits=True)
        assert feats.shape == (2, model.num_features)
        # the head is the only layer after pre_logits
        torch.testing.assert_close(model.head(feats), model(x))
        model.reset_classifier(5)
        assert model(x).shape == (2, 5)
        model.reset_classifier(0)
        torch.testing.assert_close(model(x), feats)


@pytest.mark.parametrize("name", OWN_MODELS)
def test_default_input_size_and_num_classes_zero_give_features(name):
    """Shapes only, on the meta device: every model runs at its registered input size."""
    size = default_input_size(name)
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


# --- the course's numbers and claims ---------------------------------------------------------------


@pytest.mark.parametrize("size", [224, 227])
def test_alexnet_flattens_to_9216(size):
    with torch.device("meta"):
        model = create_model("alexnet")
        fmap = model.forward_features(torch.empty(1, 3, size, size))
    assert fmap.shape == (1, 256, 6, 6) and fmap[0].numel() == 9216


@pytest.mark.parametrize("name", ["vgg11", "vgg13", "vgg16", "vgg19", "vgg16_bn"])
def test_vgg_depth_counts_layers_with_weights(name):
    with torch.device("meta"):
        model = create_model(name)
    n_weight_layers = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())
    assert n_weight_layers == int(name[3:5])
    if name == "vgg16":
        assert abs(_n_params(model) - 138e6) < 0.5e6  # "about 138 million parameters"


@pytest.mark.parametrize("name", list(RESNET_TABLE))
def test_resnet_identity_and_convolutional_blocks(name):
    """A stage opens with a convolutional block wherever the shape changes; the rest are identity blocks."""
    block, layers = RESNET_TABLE[name]
    with torch.device("meta"):
        model = create_model(name)
    expected = [
        "convolutional" if j == 0 and (stage > 0 or block is Bottleneck) else "identity"
        for stage, depth in enumerate(layers) for j in range(depth)
    ]
    assert [b.kind for b in model.blocks()] == expected


def test_zero_init_residual_makes_every_block_start_as_identity():
    model = create_model("resnet50", zero_init_residual=True).eval()
    a = torch.relu(torch.randn(1, 64, 8, 8))
    with torch.no_grad():
        for block in model.blocks():
            # z[l+2] = 0, so a[l+2] = g(shortcut(a[l])) — and = a[l] for identity blocks
            out = block(a)
            expected = a if block.kind == "identity" else torch.relu(block.shortcut(a))
            torch.testing.assert_close(out, expected)
            a = out


@pytest.mark.parametrize("small_input, side", [(False, 1), (True, 4)])
def test_resnet_small_input_stem_keeps_resolution(small_input, side):
    with torch.device("meta"):
        model = create_model("resnet18", small_input=small_input)
        fmap = model.forward_features(torch.empty(2, 3, 32, 32))
    assert fmap.shape == (2, 512, side, side)


def test_nin_parameter_count_from_the_course_formula():
    # (f*f*c_prev + 1) * c per CONV; the last 1×1 CONV to 10 classes is the Linear head
    layers = [(5, 3, 192), (1, 192, 160), (1, 160, 96), (5, 96, 192), (1, 192, 192), (1, 192, 192),
              (3, 192, 192), (1, 192, 192), (1, 192, 10)]
    expected = sum((f * f * c_prev + 1) * c for f, c_prev, c in layers)
    assert expected == 966_986
    model = create_model("nin", num_classes=10)
    assert _n_params(model) == expected
    assert model.forward_features(torch.randn(1, 3, 32, 32)).shape == (1, 192, 8, 8)


def test_conv1x1_is_a_fully_connected_layer_at_every_pixel():
    layer = Conv1x1(192, 32)
    x = torch.randn(2, 192, 28, 28)
    conv = layer[0]
    direct = torch.einsum("nchw,oc->nohw", x, conv.weight[:, :, 0, 0]) + conv.bias[:, None, None]
    out = layer(x)
    assert out.shape == (2, 32, 28, 28)  # channels shrink, H and W stay
    torch.testing.assert_close(out, torch.relu(direct), rtol=1e-4, atol=1e-5)


def test_nin_linear_head_equals_class_map_conv_then_average_pool():
    model = create_model("nin", num_classes=10).eval()
    with torch.no_grad():
        fmap = model.forward_features(torch.randn(2, 3, 32, 32))
        class_maps = nn.functional.conv2d(fmap, model.head.weight[:, :, None, None], model.head.bias)
        torch.testing.assert_close(model.forward_head(fmap), class_maps.mean(dim=(2, 3)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name, spatial", [("conv1d_net", (14,)), ("conv3d_net", (14, 14, 14))])
def test_conv_nd_reproduces_the_lecture_example(name, spatial):
    model = create_model(name, batch_norm=False)
    dims = len(spatial)
    x = torch.randn(1, 1, *spatial)
    first, second = model.features[0][0], model.features[1][0]
    assert first(x).shape == (1, 16, *[10] * dims)  # 14 * 5 (16 filters) -> 10 x 16
    assert model.features[:2](x).shape == (1, 32, *[6] * dims)  # * 5 (32 filters) -> 6 x 32
    f = 5 ** dims
    assert _n_params(first) == (f * 1 + 1) * 16 and _n_params(second) == (f * 16 + 1) * 32
