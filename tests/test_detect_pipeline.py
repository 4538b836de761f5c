"""Detectors end to end on a VOC folder the test makes: train → evaluate (stages), bad input, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.cli import main as cli
from cnnlab.data.images import DataError
from cnnlab.detect.voc import write_voc_xml

from conftest import REPO, run, run_env, stage

COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220)}


def make_voc(root: Path, n: int = 16, size=(80, 64)) -> Path:
    """Photos of one or two coloured rectangles on grey noise, as a VOC folder (seeded split)."""
    rng = np.random.default_rng(0)
    for i in range(n):
        img = rng.integers(90, 150, (size[1], size[0], 3), dtype=np.uint8)
        objs = []
        for k in range(1 + i % 2):
            name = ("red", "blue")[(i + k) % 2]
            w, h = rng.integers(14, 30, 2)
            x1, y1 = int(rng.integers(0, size[0] - w)), int(rng.integers(0, size[1] - h))
            img[y1:y1 + h, x1:x1 + w] = COLOURS[name]
            objs.append({"class": name, "box": [x1, y1, x1 + int(w), y1 + int(h)], "difficult": i == 3 and k == 0})
        (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / "JPEGImages" / f"p{i:02d}.png")
        write_voc_xml(root / "Annotations" / f"p{i:02d}.xml", f"p{i:02d}.png", size[0], size[1], objs)
    return root


TINY = ["detector.epochs=1", "detector.input_size=64", "detector.batch_size=4", "threads=1",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A VOC folder through the real stages: train_detector (imports it first), then evaluate_detector."""
    tmp = tmp_path_factory.mktemp("voc")
    voc = make_voc(tmp / "photos")
    env = run_env(tmp)
    paths = [f"paths.prepared={tmp}/prepared", f"paths.run={tmp}/run", f"paths.eval={tmp}/eval"]
    args = ["data=voc", f"data.root={voc}", "detector=yolo", *paths, *TINY]
    run(stage("train_detector", *args), REPO, env)
    run(stage("evaluate_detector", *args), REPO, env)
    return tmp


def test_voc_folder_trains_and_evaluates(trained):
    assert (trained / "prepared" / "dataset.json").is_file()
    assert {p.name for p in (trained / "run").iterdir()} == {"best.ckpt", "last.ckpt", "metrics.json", "history.csv",
                                                           "learning_curves.png", "mlflow_run.json"}
    m = json.loads((trained / "eval" / "details.json").read_text())
    headline = json.loads((trained / "eval" / "metrics.json").read_text())   # `dvc metrics show`: numbers only
    assert headline["map_50"] == m["map_50"] and "ap_50_per_class" not in headline and "detector" not in headline
    assert {"map_50", "map_50_95", "ap_50_per_class", "latency_ms_per_image"} <= set(m)
    assert 0 <= m["map_50_95"] <= m["map_50"] <= 1 and m["latency_ms_per_image"] > 0
    assert set(m["ap_50_per_class"]) == {"blue", "red"}
    for pic in ("pr.png", "boxes.png"):
        with Image.open(trained / "eval" / pic) as im:
            assert im.size[0] > 200
    run_cfg = json.loads((trained / "run" / "metrics.json").read_text())
    assert 0 < run_cfg["anchor_mean_iou"] <= 1 and run_cfg["train_seconds"] > 0


def _copy_prepared(trained: Path, dst: Path) -> Path:
    shutil.copytree(trained / "prepared", dst)
    return dst


def test_unknown_class_at_evaluation_is_an_error_and_writes_nothing(trained, tmp_path):
    from cnnlab.detect.evaluate_detector import evaluate_detector

    data = _copy_prepared(trained, tmp_path / "data")
    ann = data / "test" / "annotations.json"
    recs = json.loads(ann.read_text())
    recs[0]["objects"][0]["class"] = "zebra"
    ann.write_text(json.dumps(recs))
    with pytest.raises(DataError, match=r"annotations.json: image .* object 0: class 'zebra' is unknown"):
        evaluate_detector(trained / "run" / "best.ckpt", data, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_undecodable_image_at_evaluation_is_an_error_and_writes_nothing(trained, tmp_path):
    from cnnlab.detect.evaluate_detector import evaluate_detector

    data = _copy_prepared(trained, tmp_path / "data")
    bad = sorted((data / "test" / "images").iterdir())[-1]
    bad.write_bytes(b"\x89PNG this is not an image")
    with pytest.raises(DataError, match=f"{bad}: cannot decode the image"):
        evaluate_detector(trained / "run" / "best.ckpt", data, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_cli_prints_boxes_in_original_pixels_and_writes_json_and_picture(trained, tmp_path, capsys):
    img = sorted((trained / "photos" / "JPEGImages").iterdir())[0]
    out = tmp_path / "det"
    assert cli(["detect", str(img), "--model", str(trained / "run" / "best.ckpt"), "--score", "0", "--out-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    rec = json.loads((out / f"{img.stem}.boxes.json").read_text())
    assert rec["method"] == "yolo" and f"{len(rec['objects'])} object(s)" in printed
    assert rec["objects"] and all(0 <= o["box"][0] <= o["box"][2] <= 80 and 0 <= o["box"][1] <= o["box"][3] <= 64
                                  for o in rec["objects"])
    assert (out / f"{img.stem}.boxes.png").is_file()


def test_cli_no_objects(trained, tmp_path, capsys):
    img = tmp_path / "grey.png"
    Image.new("RGB", (50, 30), (128, 128, 128)).save(img)
    assert cli(["detect", str(img), "--model", str(trained / "run" / "best.ckpt"), "--method", "yolo", "--score", "1.01",
                "--out-dir", str(tmp_path / "det")]) == 0
    assert f"{img}: no objects" in capsys.readouterr().out
    assert json.loads((tmp_path / "det" / "grey.boxes.json").read_text())["objects"] == []


@pytest.mark.parametrize("content", [b"", b"plain text, not an image"])
def test_cli_bad_image_is_a_clear_error_without_output(trained, tmp_path, capsys, content):
    good = tmp_path / "good.png"
    Image.new("RGB", (20, 20)).save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    code = cli(["detect", str(good), str(bad), "--model", str(trained / "run" / "best.ckpt"), "--out-dir", str(tmp_path / "det")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and str(bad) in err
    assert ("empty file" in err) if not content else ("not an image" in err)
    assert not (tmp_path / "det").exists()


def test_cli_refuses_a_classifier_checkpoint(tmp_path, capsys):
    from cnnlab.tasks.classifier import Classifier

    clf = Classifier("lenet5", classes=list("0123456789"), in_chans=1, input_size=[32, 32],
                     normalization={"mean": [0.5], "std": [0.5]})
    ckpt = tmp_path / "classifier.ckpt"
    torch.save({"state_dict": clf.state_dict(), "hyper_parameters": dict(clf.hparams)}, ckpt)
    img = tmp_path / "x.png"
    Image.new("RGB", (20, 20)).save(img)
    for method in ("auto", "yolo"):
        assert cli(["detect", str(img), "--model", str(ckpt), "--method", method, "--out-dir", str(tmp_path / "det")]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "not a cnnlab detector checkpoint (a classifier of 'lenet5'" in err
    assert not (tmp_path / "det").exists()
