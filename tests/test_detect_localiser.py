"""Classification with localisation and landmarks: the course's y vector, both losses, NME, backbones."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cnnlab.detect.landmarks import nme
from cnnlab.detect.localiser import Localiser, course_loss, encode_y, logistic_loss, scores


def test_y_vector_is_the_courses():
    # the course's example: a car (class 2 of pedestrian, car, motorcycle) and a background crop
    y = encode_y(torch.tensor([1, -1]), torch.tensor([[0.5, 0.7, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]]), 3)
    torch.testing.assert_close(y[0], torch.tensor([1, 0.5, 0.7, 0.3, 0.4, 0, 1, 0]))
    torch.testing.assert_close(y[1], torch.zeros(8))


def _sig(v):
    return 1 / (1 + math.exp(-v))


def test_course_loss_is_squared_error_on_all_or_on_pc_only():
    out = torch.tensor([[0.3, -1.0, 2.0, 0.1, 0.0, 1.0, -2.0, 0.5], [1.2, 5, 5, 5, 5, 9, 9, 9]])
    y = encode_y(torch.tensor([2, -1]), torch.tensor([[0.4, 0.6, 0.2, 0.3], [0, 0, 0, 0]]), 3)
    o = out[0].tolist()
    e = [math.exp(v) for v in o[5:]]
    yhat = [_sig(v) for v in o[:5]] + [v / sum(e) for v in e]
    first = sum((a - b) ** 2 for a, b in zip(yhat, y[0].tolist()))
    second = (_sig(1.2) - 0) ** 2   # y_1 = 0: only p_c counts, whatever the rest says
    assert float(course_loss(out, y)) == pytest.approx((first + second) / 2, rel=1e-6)


def test_logistic_loss_is_log_loss_plus_log_likelihood_plus_squared_error():
    out = torch.tensor([[0.3, -1.0, 2.0, 0.1, 0.0, 1.0, -2.0, 0.5], [1.2, 5, 5, 5, 5, 9, 9, 9]])
    y = encode_y(torch.tensor([2, -1]), torch.tensor([[0.4, 0.6, 0.2, 0.3], [0, 0, 0, 0]]), 3)
    o = out[0].tolist()
    logloss = (-math.log(_sig(0.3)) - math.log(1 - _sig(1.2))) / 2
    e = [math.exp(v) for v in o[5:]]
    ce = -math.log(e[2] / sum(e))
    se = sum((_sig(a) - b) ** 2 for a, b in zip(o[1:5], [0.4, 0.6, 0.2, 0.3]))
    assert float(logistic_loss(out, y)) == pytest.approx(logloss + ce + se, rel=1e-6)


def test_scores_on_a_hand_made_case():
    inv = lambda p: math.log(p / (1 - p))  # noqa: E731  raw output whose sigmoid is p
    # crop 0: right class, box shifted by half its width (IoU 1/3); crop 1: background called background
    out = torch.tensor([[inv(0.9), inv(0.6), inv(0.5), inv(0.4), inv(0.4), 0.0, 5.0],
                        [inv(0.1), 0, 0, 0, 0, 0, 0]])
    s = scores(out, torch.tensor([1, -1]), torch.tensor([[0.4, 0.5, 0.4, 0.4], [0, 0, 0, 0]]))
    assert s["accuracy"] == 1.0 and s["localisation_accuracy"] == 0.0
    assert s["mean_iou"] == pytest.approx(1 / 3, abs=1e-5)


def test_nme_normalises_by_the_interocular_distance():
    true = np.array([[[10, 10], [14, 10], [26, 10], [30, 10], [20, 20]]], float)  # eye centres 12 and 28: d = 16
    assert nme(true + [4, 0], true)[0] == pytest.approx(4 / 16)
    assert nme(true, true)[0] == 0


@pytest.mark.parametrize("arch,size", [("lenet5", 32), ("course_lenet_example", 32), ("resnet18", 32)])
def test_any_registry_backbone(arch, size):
    m = Localiser(arch, ["a", "b", "c"], [size, size], {"mean": [0.5] * 3, "std": [0.2] * 3})
    out = m(torch.randn(2, 3, size, size))
    assert out.shape == (2, 8)
    loss = m.loss_fn(out, encode_y(torch.tensor([0, -1]), torch.rand(2, 4), 3))
    loss.backward()
    assert torch.isfinite(loss) and m.head.weight.grad is not None


def test_unknown_loss_is_refused():
    with pytest.raises(ValueError, match="localiser.loss"):
        Localiser("lenet5", ["a"], [32, 32], {"mean": [0.5] * 3, "std": [0.2] * 3}, loss="hinge")
