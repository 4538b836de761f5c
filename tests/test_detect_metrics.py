"""mAP (COCO semantics, torchmetrics + pycocotools) on hand-made cases with known answers."""

from __future__ import annotations

import pytest
import torch

from cnnlab.detect.metrics import coco_target, metric, pr_curves, summarise

CLASSES = ["cat", "dog"]


def _t(boxes, labels, difficult=None):
    t = {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels)}
    if difficult is not None:
        t["difficult"] = torch.tensor(difficult)
    return t


def _p(boxes, scores, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "scores": torch.tensor(scores),
            "labels": torch.tensor(labels)}


def test_ap_of_a_ranked_list_is_the_101_point_interpolation():
    """Two cats; detections ranked TP (0.9), FP (0.8), TP (0.7).

    Precision envelope: 1 up to recall 0.5, then 2/3 up to recall 1. COCO's 101 recall points:
    51 of them (0 .. 0.50) at 1 and 50 (0.51 .. 1) at 2/3, so AP = (51 + 50·2/3) / 101.
    """
    m = metric()
    m.update([_p([[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]], [0.9, 0.8, 0.7], [0, 0, 0])],
             [coco_target(_t([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 0]))])
    s = summarise(m.compute(), CLASSES)
    want = (51 + 50 * 2 / 3) / 101
    assert s["map_50"] == pytest.approx(want, abs=1e-6)
    assert s["map_50_95"] == pytest.approx(want, abs=1e-6)  # exact boxes: the same at every IoU
    assert s["ap_50_per_class"] == {"cat": pytest.approx(want, abs=1e-6), "dog": None}


def test_localisation_quality_separates_map50_from_map50_95():
    """One dog found with IoU 0.6: a hit at IoU 0.5 and 0.55, a miss from 0.65 on → mAP@[.5:.95] = 2/10."""
    m = metric()
    # GT [0, 0, 10, 10]; prediction [0, 0, 10, 6] has IoU 0.6
    m.update([_p([[0, 0, 10, 6]], [0.9], [1])], [coco_target(_t([[0, 0, 10, 10]], [1]))])
    s = summarise(m.compute(), CLASSES)
    assert s["map_50"] == pytest.approx(1.0) and s["map_50_95"] == pytest.approx(0.2)


def test_per_class_ap_is_averaged_into_map():
    m = metric()
    m.update([_p([[0, 0, 10, 10], [30, 30, 40, 40]], [0.9, 0.9], [0, 0])],
             [coco_target(_t([[0, 0, 10, 10], [30, 30, 40, 40]], [0, 1]))])
    s = summarise(m.compute(), CLASSES)
    assert s["ap_50_per_class"]["cat"] == pytest.approx(1.0) and s["ap_50_per_class"]["dog"] == pytest.approx(0.0)
    assert s["map_50"] == pytest.approx(0.5)


def test_difficult_objects_are_ignored_as_voc_does():
    """A detection of a difficult object is no false positive; a missed difficult one is no miss."""
    gt = coco_target(_t([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]], [0, 0, 0], [False, True, True]))
    # ranked: the difficult one first (ignored), then the normal one; the third (difficult) is missed
    m = metric()
    m.update([_p([[20, 20, 30, 30], [0, 0, 10, 10]], [0.95, 0.9], [0, 0])], [gt])
    assert summarise(m.compute(), CLASSES)["map_50"] == pytest.approx(1.0)
    # without the flag the same detections have a miss: recall 2/3
    m = metric()
    m.update([_p([[20, 20, 30, 30], [0, 0, 10, 10]], [0.95, 0.9], [0, 0])],
             [coco_target(_t([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]], [0, 0, 0]))])
    assert summarise(m.compute(), CLASSES)["map_50"] == pytest.approx(67 / 101, abs=1e-6)


def test_pr_curve_has_the_101_recall_points():
    m = metric()
    m.update([_p([[0, 0, 10, 10]], [0.9], [0])], [coco_target(_t([[0, 0, 10, 10]], [0]))])
    curves = pr_curves(m.compute(), CLASSES)
    assert list(curves) == ["cat"] and curves["cat"].shape == (101,) and curves["cat"].min() > 1 - 1e-6
