"""train_segmenter → evaluate_segmenter → `cnnlab segment` on a tiny mask folder, and the stages' errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, run, run_env, stage
from PIL import Image

from cnnlab.stages._app import compose


def _colour_folder(root: Path, n: int = 12, side: int = 32) -> Path:
    """Red rectangles (class 1) and blue discs (class 2) on dark noise: learnable in a few steps."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    yy, xx = np.mgrid[0:side, 0:side]
    for i in range(n):
        img = rng.integers(0, 40, (side, side, 3)).astype(np.uint8)
        mask = np.zeros((side, side), np.uint8)
        y, x = rng.integers(2, side // 2, 2)
        mask[y:y + 10, x:x + 12] = 1
        cy, cx = rng.integers(side // 2, side - 6, 2)
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 < 25] = 2
        img[mask == 1] = (220, 30, 30)
        img[mask == 2] = (30, 30, 220)
        Image.fromarray(img).save(root / "images" / f"s{i:02d}.png")
        Image.fromarray(mask).save(root / "masks" / f"s{i:02d}.png")
    (root / "classes.txt").write_text("ground\nbrick\nball\n")
    return root


TINY = ["model.n_filters=8", "model.dropout=0", "~scheduler", "segmenter.size=32", "segmenter.batch_size=4",
        "trainer.max_epochs=8", "optim.lr=0.01", "num_workers=0", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
        "segmenter.augment=null"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from cnnlab.segment.evaluate import evaluate_segmenter
    from cnnlab.segment.train import fit

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("seg")
    src = _colour_folder(tmp / "src", n=24)
    cfg = compose("data=masks", f"data.root={src}", *TINY, f"paths.prepared={tmp / 'prepared'}",
                  f"paths.run={tmp / 'run'}", config_name="segment")
    metrics = fit(cfg)
    report = evaluate_segmenter(tmp / "run" / "best.ckpt", tmp / "prepared", tmp / "report", n_show=2)
    return tmp, metrics, report


def test_training_publishes_a_checkpoint_that_learned(trained):
    tmp, metrics, _ = trained
    assert {p.name for p in (tmp / "run").iterdir()} == {"best.ckpt", "last.ckpt", "metrics.json", "history.csv",
                                                       "learning_curves.png"}
    assert metrics["epochs"] == 8 and metrics["best_val_miou"] > 0.5  # chance is ~1/3
    ckpt = torch.load(tmp / "run" / "best.ckpt", weights_only=True, map_location="cpu")
    assert ckpt["hyper_parameters"]["classes"] == ["ground", "brick", "ball"]
    assert json.loads((tmp / "prepared" / "dataset.json").read_text())["source"] == "masks"


def test_evaluation_report(trained):
    tmp, _, report = trained
    saved = json.loads((tmp / "report" / "details.json").read_text())
    headline = json.loads((tmp / "report" / "metrics.json").read_text())   # `dvc metrics show`: numbers only
    assert headline["miou"] == saved["miou"] and not {"iou", "confusion", "classes", "best"} & set(headline)
    assert saved["miou"] == pytest.approx(report["miou"]) and report["miou"] > 0.5
    assert set(saved["iou"]) == {"ground", "brick", "ball"}
    conf = np.array(saved["confusion"])
    truth_pixels = sum(np.asarray(Image.open(p)).size for p in (tmp / "prepared" / "test" / "masks").glob("*.png"))
    assert conf.sum() == truth_pixels
    assert saved["pixel_acc"] == pytest.approx(np.trace(conf) / conf.sum(), abs=1e-6)
    iou = np.diag(conf) / (conf.sum(0) + conf.sum(1) - np.diag(conf))
    assert saved["miou"] == pytest.approx(iou.mean(), abs=1e-5)  # torchmetrics agrees with the formula
    assert saved["ms_per_image"] > 0 and len(saved["best"]) == len(saved["worst"]) == 2
    for name in ("confusion.png", "overlays.png"):
        with Image.open(tmp / "report" / name) as im:
            assert im.size[0] > 300


def test_segment_cli_writes_an_indexed_mask_and_an_overlay(trained, tmp_path, capsys):
    from cnnlab.cli import main

    tmp, _, _ = trained
    image = next((tmp / "prepared" / "test" / "images").glob("*.png"))
    assert main(["segment", str(image), "--model", str(tmp / "run" / "best.ckpt"), "--out-dir", str(tmp_path)]) == 0
    with Image.open(tmp_path / f"{image.stem}.mask.png") as m:
        assert m.mode == "P" and m.size == (32, 32)
        pred = np.asarray(m)
    truth = np.asarray(Image.open(tmp / "prepared" / "test" / "masks" / image.name))
    assert (pred == truth).mean() > 0.8
    assert (tmp_path / f"{image.stem}.overlay.png").is_file()
    assert "ground" in capsys.readouterr().out
    assert main(["segment", str(tmp_path / "nope.png"), "--model", str(tmp / "run" / "best.ckpt")]) == 1
    assert main(["segment", str(image), "--model", str(tmp / "run" / "last.ckpt.missing")]) == 1


def test_classifier_checkpoint_is_refused(tmp_path):
    from cnnlab.segment.module import load_segmenter

    torch.save({"state_dict": {}, "hyper_parameters": {"arch": "lenet5", "classes": ["a"]}}, tmp_path / "c.ckpt")
    with pytest.raises(ValueError, match="not a cnnlab segmenter checkpoint"):
        load_segmenter(tmp_path / "c.ckpt")


def test_stage_fails_on_a_bad_mask_with_one_line_and_writes_nothing(tmp_path):
    src = _colour_folder(tmp_path / "src", n=4)
    Image.fromarray(np.zeros((20, 32), np.uint8)).save(src / "masks" / "s01.png")
    res = run(stage("train_segmenter", "data=masks", f"data.root={src}", *TINY,
                    f"paths.prepared={tmp_path / 'prepared'}", f"paths.run={tmp_path / 'run'}"),
              REPO, run_env(tmp_path), check=False)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1].startswith(f"error: {src / 'masks' / 's01.png'}: mask is 32x20")
    assert not (tmp_path / "prepared").exists() and not (tmp_path / "run").exists()
