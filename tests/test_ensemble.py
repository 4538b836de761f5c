"""Ensembles average probabilities (not logits, not weights); mismatched members are refused."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from cnnlab.evaluate.ensemble import Ensemble, load_ensemble
from cnnlab.evaluate.multicrop import TEN, MultiCropPredictor, ten_crop
from cnnlab.tasks.classifier import Classifier

NORM = {"mean": [0.5], "std": [0.25]}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def constant(logits: list[float]) -> nn.Module:
    """A 'classifier' whose logits are ``logits`` whatever the input (a Linear with zero weight)."""
    m = nn.Linear(1, len(logits))
    with torch.no_grad():
        m.weight.zero_()
        m.bias.copy_(torch.tensor(logits))
    return m.eval()


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def test_ensemble_averages_probabilities_not_logits_or_weights():
    # One confident member votes class 1; two mild members vote class 0.
    members = [constant([0.0, 10.0]), constant([2.0, 0.0]), constant([2.0, 0.0])]
    x = torch.zeros(3, 1)
    with torch.no_grad():
        probs = Ensemble(members)(x)
    # By hand: a 2-class softmax is a sigmoid of the logit difference.
    p0 = (sigmoid(-10.0) + 2 * sigmoid(2.0)) / 3
    assert torch.allclose(probs, torch.tensor([[p0, 1 - p0]] * 3), atol=1e-6)
    assert p0 == pytest.approx(0.587213, abs=1e-6) and probs.argmax(1).tolist() == [0, 0, 0]
    # Averaging logits (= averaging these members' weights) would pick class 1: mean logits (4/3, 10/3).
    mean_logits = torch.stack([m(x) for m in members]).mean(0)
    assert mean_logits.argmax(1).tolist() == [1, 1, 1]
    averaged = constant((sum(m.bias for m in members) / 3).tolist())
    assert averaged(x).argmax(1).tolist() == [1, 1, 1]


def test_multicrop_over_an_ensemble_is_the_mean_over_members_and_crops():
    torch.manual_seed(0)
    members = [nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval() for _ in range(2)]
    x = torch.randn(2, 1, 6, 6)
    with torch.no_grad():
        got = MultiCropPredictor(Ensemble(members), TEN, (4, 4))(x)
        expected = torch.stack([torch.softmax(m(c), 1) for m in members for c in ten_crop(x, (4, 4))]).mean(0)
    assert torch.allclose(got, expected, atol=1e-6)


def save_ckpt(path: Path, classes=("a", "b", "c"), input_size=(32, 32), in_chans=1, norm=NORM) -> Path:
    """A classifier checkpoint with the keys load_checkpoint reads (as Lightning writes them)."""
    module = Classifier("lenet5", list(classes), in_chans, list(input_size), norm)
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return path


def test_load_ensemble_from_checkpoints(tmp_path: Path):
    torch.manual_seed(0)
    paths = [save_ckpt(tmp_path / f"s{i}.ckpt") for i in range(3)]
    ens, hp = load_ensemble(paths)
    assert len(ens.members) == 3 and hp["classes"] == ["a", "b", "c"] and not ens.training
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        expected = torch.stack([torch.softmax(m(x), 1) for m in ens.members]).mean(0)
        assert torch.allclose(ens(x), expected)


@pytest.mark.parametrize("key, kwargs", [
    ("classes", {"classes": ("a", "b", "x")}),
    ("input_size", {"input_size": (36, 36)}),
    ("in_chans", {"in_chans": 3}),
    ("normalization", {"norm": {"mean": [0.4], "std": [0.25]}}),
])
def test_members_that_disagree_are_refused(tmp_path: Path, key: str, kwargs: dict):
    good = save_ckpt(tmp_path / "seed0.ckpt")
    bad = save_ckpt(tmp_path / "seed1.ckpt", **kwargs)
    with pytest.raises(ValueError, match=key) as err:
        load_ensemble([good, bad])
    assert str(good) in str(err.value) and str(bad) in str(err.value)


def test_empty_ensemble_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        Ensemble([])
    with pytest.raises(ValueError, match="at least one"):
        load_ensemble([])
