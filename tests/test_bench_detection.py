"""The detection benchmark's sliding-window rows: trained and evaluated in the bench's own work folder."""

from __future__ import annotations

import json

import pytest
import torch

from cnnlab.detect import scenes

ORL = "data/raw/orl_faces"
TINY = ["windows.max_epochs=1", "windows.sizes=[24,40]", "windows.threshold=0.3"]


@pytest.fixture(scope="module")
def tiny_scenes(tmp_path_factory):
    torch.set_num_threads(1)
    data = tmp_path_factory.mktemp("bench") / "scenes"
    scenes.generate(data, ORL, {"val_ids": 4, "test_ids": 4, "seed": 0},
                    scenes.SceneConfig(counts=(("train", 12), ("val", 4), ("test", 4))), seed=0)
    return data


def test_windows_rows_train_and_evaluate_in_the_work_folder(tiny_scenes, tmp_path):
    from cnnlab.bench.detection import body, windows_rows

    work = tmp_path / "work"
    naive, conv = windows_rows(tiny_scenes, work, threads=1, overrides=TINY)
    assert naive["detector"] == "sliding windows (naive)" and conv["detector"] == "sliding windows (convolutional)"
    assert naive["map_50"] == conv["map_50"] and 0 <= naive["map_50"] <= 1 and naive["ms"] > 0 < conv["ms"]
    assert naive["epochs"] == 1 and naive["params"] > 0 and naive["train_s"] > 0
    # everything it wrote lies in the work folder: the classifier and its test-split evaluation
    assert (work / "windows" / "best.ckpt").is_file()
    evaluated = json.loads((work / "eval" / "windows" / "metrics.json").read_text())
    assert evaluated["n_images"] == 4 and evaluated["map_50"] == naive["map_50"]
    # --reuse evaluates the published classifier again instead of retraining it
    stamp = (work / "windows" / "best.ckpt").stat().st_mtime_ns
    again = windows_rows(tiny_scenes, work, threads=1, reuse=True, overrides=TINY)
    assert (work / "windows" / "best.ckpt").stat().st_mtime_ns == stamp and again[0]["train_s"] == naive["train_s"]
    yolo = {"detector": "yolo", "map_50": 0.5, "map_50_95": 0.2, "ms": 10.0, "params": 100, "train_s": 5, "epochs": 2,
            "ap_50": {"face": 0.5}}
    text = body([yolo], [naive, conv], 0.6, {1: 0.5}, 5, 2, False, {"yolo": 2})
    assert "| sliding windows (naive) |" in text and "| sliding windows (convolutional) |" in text
    assert f"({naive['ms'] / 10.0:.1f}×)" in text and "its own 1 epochs" in text
    assert "on CPU, one thread" in text
    on_gpu = body([yolo], [naive, conv], 0.6, {1: 0.5}, 5, 2, False, {"yolo": 2}, trainer="gpu")
    assert "with `trainer=gpu`" in on_gpu and "on CPU, one thread" not in on_gpu
