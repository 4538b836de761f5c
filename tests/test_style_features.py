"""Feature networks: a user's torchvision VGG-19 file, cnnlab checkpoints, the random multi-scale net."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cnnlab.models import create_model
from cnnlab.style.features import build, random_multiscale, style_weights, vgg19_aliases


def classifier_ckpt(path: Path, in_chans: int = 1) -> Path:
    """A cnnlab classifier checkpoint as the train stage writes it (hyper-parameters + ``model.`` state)."""
    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=3, in_chans=in_chans)
    hp = {"arch": "lenet5", "classes": ["a", "b", "c"], "in_chans": in_chans, "input_size": [32, 32],
          "normalization": {"mean": [0.3] * in_chans, "std": [0.3] * in_chans}, "model_kwargs": {}}
    torch.save({"hyper_parameters": hp, "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, path)
    return path


def dlib_ckpt(path: Path) -> Path:
    """A face-encoder checkpoint of dlib's architecture (random weights: no .dat needed)."""
    from cnnlab.face.models.dlib_resnet import INPUT_SIZE, NORMALIZATION, DlibFaceResNet

    state = {f"embedder.net.{k}": v for k, v in DlibFaceResNet().state_dict().items()}
    hp = {"arch": "dlib_face_resnet", "in_chans": 3, "input_size": [INPUT_SIZE, INPUT_SIZE],
          "normalization": NORMALIZATION, "model_kwargs": {}, "embedding_dim": 128}
    torch.save({"hyper_parameters": hp, "state_dict": state}, path)
    return path


def _check_vgg19(net, tv):
    x = torch.rand(1, 3, 40, 48)
    acts = net(x, ["relu1_1", "relu4_2", "conv5_1"])
    xn = (x - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) / torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    with torch.no_grad():
        torch.testing.assert_close(acts["relu4_2"], tv.features[:23](xn))  # conv4_2 is features.21, its ReLU 22
        torch.testing.assert_close(acts["relu1_1"], tv.features[:2](xn))
        torch.testing.assert_close(acts["conv5_1"], tv.features[:29](xn))
    assert vgg19_aliases()["pool5"] == "features.36"
    with pytest.raises(KeyError, match="relu4_2"):
        net(x, ["relu9_9"])


def test_torchvision_vgg19_trunk_file(tmp_path):
    """Fast: torchvision's own VGG-19 trunk (``make_layers`` of configuration E), saved under its keys."""
    import torchvision

    torch.manual_seed(0)
    tv = torch.nn.Module()
    tv.features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"]).eval()
    path = tmp_path / "vgg19_features.pth"
    torch.save(tv.state_dict(), path)
    _check_vgg19(build("vgg19", path), tv)


@pytest.mark.slow
def test_users_torchvision_vgg19_file(tmp_path):
    """The whole file a user has: ``torchvision.models.vgg19``'s state dict (575 MB)."""
    import torchvision

    torch.manual_seed(0)
    tv = torchvision.models.vgg19(weights=None).eval()
    path = tmp_path / "vgg19.pth"
    torch.save(tv.state_dict(), path)
    _check_vgg19(build("vgg19", path), tv)


def test_a_file_that_is_not_vgg19_is_refused(tmp_path):
    path = tmp_path / "lenet.pth"
    torch.save(create_model("lenet5").state_dict(), path)
    with pytest.raises(ValueError, match="not a torchvision VGG-19"):
        build("vgg19", path)
    with pytest.raises(ValueError, match="needs style.weights"):
        build("vgg19", None)
    with pytest.raises(FileNotFoundError):
        build("vgg19", tmp_path / "missing.pth")


def test_cnnlab_checkpoints_as_feature_networks(tmp_path):
    grey = build(str(classifier_ckpt(tmp_path / "lenet.ckpt")))
    assert grey.defaults["style"] == ["features.0", "features.3"] and grey.defaults["content"] == "features.3"
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    a = grey(x, ["features.3"])["features.3"]
    assert a.shape == (1, 16, 10, 10)
    a.sum().backward()  # an RGB image through a grey network: the gradient reaches all three channels
    assert (x.grad.abs().sum(dim=(2, 3)) > 0).all()
    with pytest.raises(KeyError, match="features.0, features.3"):
        grey(x, ["conv1"])

    face = build(str(dlib_ckpt(tmp_path / "dlib.ckpt")))
    layers = face.defaults["style"]
    assert len(layers) == 5 and all(name.startswith("net.") for name in layers)
    acts = face(torch.rand(1, 3, 96, 128), layers + [face.defaults["content"]])
    assert all(v.ndim == 4 and min(v.shape[2:]) >= 2 for v in acts.values())  # deep enough, not too deep


def test_random_multiscale_is_seeded_and_multi_scale():
    a, b = random_multiscale(seed=1), random_multiscale(seed=1)
    x = torch.rand(1, 3, 24, 24)
    fa, fb = a(x, ["scale3", "scale15"]), b(x, ["scale3", "scale15"])
    torch.testing.assert_close(fa["scale15"], fb["scale15"])
    assert fa["scale3"].shape == fa["scale15"].shape == (1, 32, 24, 24)  # "same" padding at every scale
    w = a.model.conv7.weight
    torch.testing.assert_close(w.mean(dim=(1, 2, 3)), torch.zeros(32), atol=1e-5, rtol=0)  # zero-mean filters
    assert not torch.equal(random_multiscale(seed=2).model.conv7.weight, w)


def test_style_weights():
    assert style_weights(list("abcde")) == {k: 0.2 for k in "abcde"}
    with pytest.raises(ValueError, match="layer_weights"):
        style_weights(["a", "b"], [1.0])
