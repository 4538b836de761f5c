"""The face accuracy benchmark: faces-per-second measurement and its section (issues 6 and 9)."""

from __future__ import annotations

import pytest

pytest.importorskip("dlib")

from cnnlab.bench.face_accuracy import GOAL, faces_per_second, format_section  # noqa: E402
from conftest import REPO  # noqa: E402

ALIGN = {"detector": "hog", "upsample": 1, "size": 150, "padding": 0.25}


def _row(key: str, group: str, rank1: float, eer: float) -> dict:
    return {"key": key, "group": group, "method": key, "rank1": rank1, "eer": eer, "tar_at_far_1pct": 0.5,
            "ms_per_face": 1.0}


def test_faces_per_second_times_each_step(tmp_path):
    from cnnlab.face.models.embedder import pretrained_dlib_checkpoint

    images = sorted((REPO / "data/raw/orl_faces/s1").glob("*.pgm"))[:3]
    rates = faces_per_second(images, ALIGN, {"dlib": pretrained_dlib_checkpoint(tmp_path / "d.ckpt")},
                             repeats=1, n_encode=2)
    assert rates["n_images"] == 3 and rates["n_encode"] == 2
    assert rates["detection"] > 0 and rates["alignment"] > rates["detection"] / 100
    assert set(rates["encoding"]["dlib"]) >= {1} and all(v > 0 for v in rates["encoding"]["dlib"].values())


def test_section_names_who_meets_the_goal_and_the_spread_over_splits():
    comparison = {"alignment": {**ALIGN, "detected": 200, "images": 200},
                  "split": {"train": ["a"] * 12, "val": ["v1", "v2"], "test": ["t1", "t2"]},
                  "rows": [_row("lbp", "hand-engineered", 0.8, 0.2), _row("dlib", "pretrained", GOAL["rank1"], 0.0)]}
    splits = [{k: {"rank1": r, "eer": 0.1} for k in ("course39", "dlib_resnet", "raw_pixels", "eigenfaces",
                                                     "fisherfaces", "lbp")} for r in (0.8, 0.9)]
    rates = {"detection": 80.0, "alignment": 300.0, "encoding": {"dlib": {1: 12.0, 2: 20.0}}, "n_images": 200,
             "n_encode": 64}
    text = format_section(comparison, splits, rates, load=1.0)
    assert "met by dlib." in text and "faces found in 200/200" in text and "(v1, v2: " in text
    assert "| course39 (from scratch) | 0.850 ± 0.050 | 0.800 |" in text
    assert "| encoding: dlib | 12.0 | 20.0 |" in text and "| detection (hog) | 80 | – |" in text
