"""Embedded data sets and splits."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, run, run_env, stage
from PIL import Image

from cnnlab.data.prepare import SplitConfig, digits_source, folder_source, prepare_dataset
from cnnlab.data.splits import identity_split, stratified_split


def test_stratified_split_is_seeded_and_stratified():
    labels = [str(i % 5) for i in range(200)]
    a = stratified_split(labels, 0.15, 0.15, seed=1)
    assert a == stratified_split(labels, 0.15, 0.15, seed=1)
    assert a != stratified_split(labels, 0.15, 0.15, seed=2)
    counts = Counter(zip(labels, a))
    for c in "01234":
        assert counts[(c, "test")] == 6 and counts[(c, "val")] == 6 and counts[(c, "train")] == 28


def test_identity_split_holds_out_whole_people():
    labels = [f"s{p}" for p in range(1, 21) for _ in range(10)]
    roles = identity_split(labels, val_ids=4, test_ids=4, seed=0)
    people = {r: {l for l, x in zip(labels, roles) if x == r} for r in ("train", "val", "test")}
    assert len(people["train"]) == 12 and len(people["val"]) == 4 and len(people["test"]) == 4
    assert not people["train"] & people["val"] and not people["train"] & people["test"]
    assert not people["val"] & people["test"]
    with pytest.raises(ValueError, match="leave none"):
        identity_split(labels, val_ids=10, test_ids=10, seed=0)


def test_digits_source_is_all_1797_at_32px():
    items = list(digits_source(32))
    assert len(items) == 1797
    assert items[0][2].size == (32, 32) and items[0][2].mode == "L"
    assert Counter(label for _, label, _ in items).keys() == {str(i) for i in range(10)}


def test_prepare_writes_manifest_and_stats(tmp_path):
    meta = prepare_dataset(digits_source(32), tmp_path / "d", SplitConfig(val=0.15, test=0.15), channels=1,
                           limit_per_class=20)
    rows = list(csv.DictReader(open(tmp_path / "d" / "manifest.csv")))
    assert len(rows) == 200 and meta["counts"] == {"train": 140, "val": 30, "test": 30}
    for r in rows[:20]:
        img = Image.open(tmp_path / "d" / r["path"])
        assert img.size == (32, 32) and r["path"].startswith(f"{r['split']}/{r['label']}/")
    # mean/std equal a direct computation over the train images
    train = np.stack([np.asarray(Image.open(tmp_path / "d" / r["path"]), np.float64) / 255
                      for r in rows if r["split"] == "train"])
    assert meta["mean"][0] == pytest.approx(train.mean(), abs=1e-5)
    assert meta["std"][0] == pytest.approx(train.std(), abs=1e-5)
    assert json.loads((tmp_path / "d" / "dataset.json").read_text())["classes"] == [str(i) for i in range(10)]


def test_orl_faces_ship_with_credit_and_prepare_by_identity(tmp_path):
    raw = REPO / "data" / "raw" / "orl_faces"
    readme = (raw / "README.md").read_text()
    assert "Olivetti Research Laboratory" in readme and "Samaria" in readme
    items = list(folder_source(raw, "L"))
    assert len(items) == 200 and items[0][2].load()[0].size == (92, 112)  # decoded when written
    meta = prepare_dataset(items, tmp_path / "ids", SplitConfig(by="identities", val_ids=4, test_ids=4), channels=1)
    assert meta["counts"] == {"train": 120, "val": 40, "test": 40}
    assert meta["image_size"] == [112, 92]


def test_prepare_stage_on_rgb_folder(tmp_path):
    root = tmp_path / "imgs"
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(root / c / f"{i}.jpg")
    out = tmp_path / "prepared"
    run(stage("prepare", "data=folder", f"data.root={root}", f"paths.prepared={out}"), REPO, run_env(tmp_path))
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["classes"] == ["cat", "dog"] and meta["channels"] == 3 and len(meta["mean"]) == 3
    assert sum(meta["counts"].values()) == 20
