"""The week-3 systems end to end on tiny scenes: train (skeleton) → evaluate → CLI, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cnnlab.detect import scenes

ORL = "data/raw/orl_faces"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Tiny scenes, and each task trained for one epoch through fit_and_publish."""
    from cnnlab.detect.tasks import train
    from cnnlab.stages._app import compose

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("detect")
    data = tmp / "scenes"
    scenes.generate(data, ORL, {"val_ids": 4, "test_ids": 4, "seed": 0},
                    scenes.SceneConfig(counts=(("train", 16), ("val", 6), ("test", 6))), seed=0)
    cfg = compose(f"paths.prepared={data}", f"paths.localiser={tmp}/loc", f"paths.landmarks={tmp}/lm",
                  f"paths.windows={tmp}/win", f"paths.reports={tmp}/reports", "trainer.enable_progress_bar=false",
                  "trainer.enable_model_summary=false", "localiser.max_epochs=2", "landmarks.max_epochs=2",
                  "windows.max_epochs=2", "windows.sizes=[24,40]", "windows.threshold=0.3", config_name="detect")
    metrics = {task: train(cfg, task) for task in ("localiser", "landmarks", "windows")}
    return cfg, tmp, metrics


def test_training_publishes_checkpoints_that_carry_their_metadata(trained):
    cfg, tmp, metrics = trained
    for task, folder in (("localiser", "loc"), ("landmarks", "lm"), ("windows", "win")):
        assert {"best.ckpt", "last.ckpt", "metrics.json"} <= {p.name for p in (tmp / folder).iterdir()}
        assert metrics[task]["epochs"] == 2 and metrics[task]["n_train_crops"] > 0
        hp = torch.load(tmp / folder / "best.ckpt", map_location="cpu", weights_only=True)["hyper_parameters"]
        assert set(hp["normalization"]) == {"mean", "std"}
    hp = torch.load(tmp / "loc" / "best.ckpt", weights_only=True)["hyper_parameters"]
    assert hp["classes"] == list(scenes.CLASSES) and hp["arch"] == "lenet5" and hp["input_size"] == [32, 32]
    assert hp["loss"] == "logistic"


def test_evaluation_writes_metrics_and_pictures(trained):
    from cnnlab.detect.evaluate import evaluate_landmarks, evaluate_localiser, evaluate_windows

    cfg, tmp, _ = trained
    loc = evaluate_localiser(cfg)
    assert 0 <= loc["localisation_accuracy"] <= loc["object_accuracy"] and 0 <= loc["mean_iou"] <= 1
    lm = evaluate_landmarks(cfg)
    assert lm["nme_dlib"] < lm["nme_mean_shape"] and lm["n_faces"] > 0
    win = evaluate_windows(cfg)
    assert win["naive_vs_conv_max_abs_diff"] <= 1e-5 and win["windows_per_image"] >= 100
    assert 0 <= win["map_50"] <= 1 and "map_50_95" in win
    assert win["map_score_threshold"] == 0.01          # mAP ranks low scores too, not only the 0.9 display cut
    for task, pics in (("localiser", ("predictions.png", "errors.png")), ("landmarks", ("predictions.png", "errors.png")),
                       ("windows", ("boxes.png", "errors.png"))):
        folder = tmp / "reports" / task
        assert json.loads((folder / "metrics.json").read_text()) and all((folder / p).is_file() for p in pics)


def test_cli_detect_sliding_writes_json_and_picture(trained, tmp_path, capsys):
    from cnnlab.cli import main

    cfg, tmp, _ = trained
    image = Path(cfg.paths.prepared) / "test" / "images" / "00000.png"
    rc = main(["detect", str(image), "--method", "sliding", "--model", str(tmp / "win" / "best.ckpt"),
               "--score", "0.3", "--out-dir", str(tmp_path)])
    assert rc == 0
    res = json.loads((tmp_path / "00000.boxes.json").read_text())
    assert res["width"] == 128 and res["method"] == "sliding" and (tmp_path / "00000.boxes.png").is_file()
    out = capsys.readouterr().out
    assert str(image) in out and (("no objects" in out) == (not res["objects"]))
    for o in res["objects"]:
        assert o["class"] in scenes.CLASSES and o["score"] > 0.3 and len(o["box"]) == 4


def test_cli_detect_refuses_bad_input_and_writes_nothing(trained, tmp_path, capsys):
    from cnnlab.cli import main

    cfg, tmp, _ = trained
    image = Path(cfg.paths.prepared) / "test" / "images" / "00000.png"
    not_image = tmp_path / "notes.png"
    not_image.write_text("not a picture")
    out = tmp_path / "out"
    assert main(["detect", str(not_image), "--model", str(tmp / "win" / "best.ckpt"), "--out-dir", str(out)]) == 1
    assert "notes.png: cannot read image" in capsys.readouterr().err
    # a localiser checkpoint is not a sliding-window classifier (asked for), nor any detector (auto)
    assert main(["detect", str(image), "--method", "sliding", "--model", str(tmp / "loc" / "best.ckpt"),
                 "--out-dir", str(out)]) == 1
    assert "not a cnnlab windows checkpoint" in capsys.readouterr().err
    assert main(["detect", str(image), "--model", str(tmp / "loc" / "best.ckpt"), "--out-dir", str(out)]) == 1
    err = capsys.readouterr().err
    assert "not a cnnlab detector checkpoint" in err and "train_windows checkpoint" in err
    assert main(["detect", str(image), "--model", str(tmp / "missing.ckpt"), "--out-dir", str(out)]) == 1
    assert not out.exists()


@pytest.mark.parametrize("detector", ["faster_rcnn", "rcnn_mini"])
def test_region_proposal_detectors_train_and_evaluate(trained, detector):
    """The two detectors `make test` runs only here (the whole DAG that trains them is a slow test)."""
    from cnnlab.detect.evaluate_detector import evaluate_detector
    from cnnlab.detect.train import train_detector
    from cnnlab.stages._app import compose

    _, tmp, _ = trained
    run = tmp / detector
    cfg = compose(f"detector={detector}", f"paths.prepared={tmp / 'scenes'}", f"paths.run={run}",
                  "detector.epochs=1", "detector.limit=6", "num_workers=0", "trainer.enable_progress_bar=false",
                  "trainer.enable_model_summary=false", config_name="detect")
    published = train_detector(cfg)
    assert published["epochs"] == 1 and (run / "best.ckpt").is_file()
    m = evaluate_detector(run / "best.ckpt", tmp / "scenes", tmp / "eval" / detector)
    assert 0.0 <= m["map_50"] <= 1.0 and 0.0 <= m["map_50_95"] <= m["map_50"] + 1e-9
    assert m["latency_ms_per_image"] > 0 and m["num_params"] > 0
    assert set(m["ap_50_per_class"]) == set(scenes.CLASSES)
    assert json.loads((tmp / "eval" / detector / "metrics.json").read_text())["map_50"] == m["map_50"]
