"""Bad input: a clear error naming the file or key, a non-zero exit, and no partial output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, run, run_env, stage
from PIL import Image


def _folder(root: Path, n_classes: int = 2, n: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for c in range(n_classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / f"class{c}" / f"{i}.png")
    return root


def _prepare(tmp_path: Path, root: Path, *extra: str):
    out = tmp_path / "prepared"
    res = run(stage("prepare", "data=folder", f"data.root={root}", f"paths.prepared={out}", *extra),
              REPO, run_env(tmp_path), check=False)
    return res, out


def test_good_folder_prepares(tmp_path):
    res, out = _prepare(tmp_path, _folder(tmp_path / "imgs"))
    assert res.returncode == 0, res.stderr
    assert (out / "manifest.csv").is_file()


@pytest.mark.parametrize("breakage,expected", [
    ("corrupt_png", "cannot read image"),
    ("not_an_image", "not an image file"),
    ("empty_class", "empty class folder"),
])
def test_bad_folder_fails_cleanly(tmp_path, breakage, expected):
    root = _folder(tmp_path / "imgs")
    if breakage == "corrupt_png":
        bad = root / "class1" / "broken.png"
        bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    elif breakage == "not_an_image":
        bad = root / "class0" / "notes.txt"
        bad.write_text("hello")
    else:
        bad = root / "class2"
        bad.mkdir()
    res, out = _prepare(tmp_path, root)
    assert res.returncode != 0
    assert expected in res.stderr and str(bad) in res.stderr
    assert "Traceback" not in res.stderr
    assert not out.exists() and not list(tmp_path.glob(".prepared*"))


def test_missing_data_root(tmp_path):
    res, out = _prepare(tmp_path, tmp_path / "nowhere")
    assert res.returncode != 0
    assert "data root not found" in res.stderr and str(tmp_path / "nowhere") in res.stderr
    assert not out.exists()


def test_folder_without_root_names_key(tmp_path):
    res = run(stage("prepare", "data=folder", f"paths.prepared={tmp_path / 'p'}"), REPO, run_env(tmp_path), check=False)
    assert res.returncode != 0 and "data.root" in res.stderr


def test_unknown_config_key(tmp_path):
    res = run(stage("prepare", "data.no_such_key=3"), REPO, run_env(tmp_path), check=False)
    assert res.returncode != 0
    assert "no_such_key" in res.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_unknown_model_lists_known(tmp_path, tiny_digits):
    res = run(stage("train", "model.name=nosuchnet", f"paths.prepared={tiny_digits}", f"paths.run={tmp_path / 'r'}"),
              REPO, run_env(tmp_path), check=False)
    assert res.returncode != 0 and "nosuchnet" in res.stderr and "lenet5" in res.stderr
    assert not (tmp_path / "r").exists()


def test_train_before_prepare_names_missing_file(tmp_path):
    res = run(stage("train", f"paths.prepared={tmp_path / 'none'}", f"paths.run={tmp_path / 'r'}"),
              REPO, run_env(tmp_path), check=False)
    assert res.returncode != 0 and "dataset.json" in res.stderr and "prepare" in res.stderr
