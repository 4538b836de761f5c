"""compare_detectors: one table from the evaluations, sliding windows as two rows, bad input named."""

from __future__ import annotations

import json

import pytest

from cnnlab.data.images import DataError
from cnnlab.detect.compare import compare_detectors


def _write(path, obj):
    path.mkdir(parents=True, exist_ok=True)
    (path / "metrics.json").write_text(json.dumps(obj))


def test_table_has_every_detector_and_both_sliding_window_implementations(tmp_path):
    _write(tmp_path / "eval" / "yolo", {"detector": "yolo", "map_50": 0.91, "map_50_95": 0.6,
                                        "latency_ms_per_image": 4.0, "num_params": 1000})
    _write(tmp_path / "runs" / "yolo", {"train_seconds": 12.5})
    _write(tmp_path / "eval" / "windows", {"map_50": 0.5, "map_50_95": 0.2, "latency_ms_per_image": 9.0,
                                           "naive_ms_per_image": 300.0, "conv_ms_per_image": 9.0})
    rows = compare_detectors([tmp_path / "eval" / "yolo", tmp_path / "eval" / "windows"],
                             [tmp_path / "runs" / "yolo", tmp_path / "runs" / "windows"], tmp_path / "out")
    assert [(r["detector"], r["latency_ms_per_image"]) for r in rows] == [
        ("yolo", 4.0), ("sliding windows (naive)", 300.0), ("sliding windows (convolutional)", 9.0)]
    table = (tmp_path / "out" / "table.md").read_text()
    assert "| yolo | 0.910 | 0.600 | 4.0 | 1,000 | 12 |" in table and "sliding windows (naive)" in table
    shown = json.loads((tmp_path / "out" / "metrics.json").read_text())   # `dvc metrics show`: numbers by detector
    assert shown["yolo"] == {"map_50": 0.91, "map_50_95": 0.6, "latency_ms_per_image": 4.0, "num_params": 1000,
                             "train_seconds": 12.5}
    assert shown["sliding windows (naive)"]["latency_ms_per_image"] == 300.0


def test_missing_keys_and_missing_evaluations_are_named(tmp_path):
    _write(tmp_path / "eval" / "bad", {"map_50": 0.5})
    with pytest.raises(DataError, match=r"bad/metrics.json: missing \['map_50_95', 'latency_ms_per_image'\]"):
        compare_detectors([tmp_path / "eval" / "bad"], [None], tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="nothing/metrics.json"):
        compare_detectors([tmp_path / "eval" / "nothing"], [None], tmp_path / "out")
    assert not (tmp_path / "out").exists()
