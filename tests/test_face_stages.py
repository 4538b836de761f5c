"""The face pipeline's stages end to end on the embedded ORL faces, with tiny settings.

prepare (identity split) → train_encoder → encode_faces (val, test) → calibrate → evaluate_faces,
each through its real Hydra entry point, writing into a temporary folder and a private MLflow
store. The stages run in this process (torch, Lightning and MLflow are imported once: six
interpreters would spend most of a minute on imports alone); the slow test runs the same chain
as Snakemake jobs from workflow/rules/faces.smk.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import BIN, REPO, copy_repo, run, run_env


def face_group() -> list[str]:
    """``+face=default`` until conf/config.yaml lists the face group among its defaults."""
    defaults = yaml.safe_load((REPO / "conf" / "config.yaml").read_text())["defaults"]
    return [] if any(isinstance(d, dict) and "face" in d for d in defaults) else ["+face=default"]


def overrides(tmp: Path) -> list[str]:
    """Every face output under ``tmp``; two epochs, fewer baseline candidates, one thread, no workers."""
    prepared = tmp / "prepared" / "orl_faces_ids"
    return [*face_group(), f"face.paths.prepared={prepared}", f"face.paths.identity_split={prepared}",
            f"face.paths.run={tmp}/models/enc-ids", f"face.paths.encodings={tmp}/enc",
            f"face.paths.reports={tmp}/reports", "face.train.max_epochs=2", "face.encoder.embedding_dim=32",
            "face.evaluate.trials=3", "face.evaluate.eigen_components=[10,20]", "face.evaluate.fisher_pca=[10,20]",
            "face.evaluate.lbp_grids=[[4,4]]", "threads=1", "num_workers=0"]


def run_stage(name: str, *args: str) -> None:
    """``python -m cnnlab.stages.<name> ARGS``, in this process."""
    from hydra.core.global_hydra import GlobalHydra

    main = importlib.import_module(f"cnnlab.stages.{name}").main
    argv = sys.argv
    sys.argv = [f"cnnlab.stages.{name}", *args]
    GlobalHydra.instance().clear()
    try:
        main()
    finally:
        sys.argv = argv
        GlobalHydra.instance().clear()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Path:
    """The chain, run from ``tmp`` (MLflow's artifacts land there) with the repository's config."""
    tmp = tmp_path_factory.mktemp("faces")
    saved_env, saved_cwd, threads = dict(os.environ), Path.cwd(), torch.get_num_threads()
    os.environ.update(MLFLOW_TRACKING_URI=f"sqlite:///{tmp / 'mlflow.db'}", CNNLAB_CONF=str(REPO / "conf"))
    os.chdir(tmp)
    try:
        run_stage("prepare", "data=orl_faces_ids", f"paths.raw={REPO}/data/raw",
                  f"paths.prepared={tmp}/prepared/orl_faces_ids")
        ov = overrides(tmp)
        run_stage("train_encoder", *ov)
        for split in ("val", "test"):
            run_stage("encode_faces", *ov, f"gallery.root={tmp}/prepared/orl_faces_ids/{split}")
        run_stage("calibrate", *ov)
        run_stage("evaluate_faces", *ov)
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        torch.set_num_threads(threads)
    return tmp


def test_encoder_trains_on_training_people_only(pipeline):
    metrics = json.loads((pipeline / "models/enc-ids/metrics.json").read_text())
    ids = json.loads((pipeline / "prepared/orl_faces_ids/dataset.json").read_text())["classes_per_split"]
    assert metrics["train_identities"] == ids["train"] and len(ids["train"]) == 12
    assert metrics["epochs"] == 2 and metrics["best_epoch"] in (0, 1)
    assert 0.25 <= metrics["best_val_rank1"] <= 1.0 and 0.0 <= metrics["best_val_eer"] <= 0.5
    for name in ("best.ckpt", "last.ckpt"):
        assert (pipeline / "models/enc-ids" / name).stat().st_size > 10_000


def test_encodings_are_named_after_the_split_and_hold_its_people(pipeline):
    from cnnlab.face.encoder import checkpoint_hash
    from cnnlab.face.encodings import load_encodings

    ids = json.loads((pipeline / "prepared/orl_faces_ids/dataset.json").read_text())["classes_per_split"]
    for split in ("val", "test"):
        enc = load_encodings(pipeline / "enc" / f"orl_faces_ids-{split}.npz")
        assert sorted(set(enc.labels)) == ids[split] and len(enc) == 40 and enc.dim == 32
        assert enc.encoder_hash == checkpoint_hash(pipeline / "models/enc-ids/best.ckpt")
        assert Path(enc.encoder_path) == pipeline / "models/enc-ids/best.ckpt"


def test_calibration_meets_its_target_far_on_the_validation_pairs(pipeline):
    from cnnlab.face.encodings import load_encodings
    from cnnlab.face.metrics import verification_pairs

    record = json.loads((pipeline / "enc/orl_faces_ids-val.threshold.json").read_text())
    assert record == json.loads((pipeline / "enc/orl_faces_ids-test.threshold.json").read_text())
    val = load_encodings(pipeline / "enc/orl_faces_ids-val.npz")
    dist, same = verification_pairs(val.embeddings, val.labels)
    far = np.mean(dist[~same] <= record["tau"])
    assert far <= record["target_far"] == 0.01 and far == pytest.approx(record["far"])
    assert record["tar"] == pytest.approx(np.mean(dist[same] <= record["tau"]))
    assert (record["n_genuine"], record["n_impostor"]) == (4 * 45, 780 - 180) and not record["seen_in_training"]


def test_report_compares_the_encoder_with_every_baseline_on_the_test_people(pipeline):
    metrics = json.loads((pipeline / "reports/metrics.json").read_text())
    assert metrics["split"]["test"] == json.loads(
        (pipeline / "prepared/orl_faces_ids/dataset.json").read_text())["classes_per_split"]["test"]
    assert set(metrics["baselines"]) == {"raw_pixels", "eigenfaces", "fisherfaces", "lbp"}
    for m in [metrics["encoder"], *metrics["baselines"].values()]:
        t = m["test"]
        assert 0.25 <= t["rank1"] <= 1.0 and 0.5 <= t["auc"] <= 1.0 and 0.0 <= t["eer"] <= 0.5
        assert 0.0 <= t["tar_at_far_1pct"] <= 1.0 and t["open_set_far"] <= 0.01 and 0.0 <= t["open_set_dir"] <= 1.0
        assert (t["n_genuine"], t["n_impostor"]) == (180, 600)
    assert metrics["baselines"]["fisherfaces"]["params"]["n_pca"] in (10, 20)
    assert metrics["calibration"]["tau"] > 0 and 0.0 <= metrics["calibration"]["test_far"] <= 1.0
    report = (pipeline / "reports/report.md").read_text()
    assert report.count("\n| ") == 6 and "Fisherfaces" in report and "s12" in report   # header + 5 methods
    for png in ("roc.png", "distances.png"):
        with Image.open(pipeline / "reports" / png) as img:
            assert img.width >= 600 and img.height >= 400


def test_every_stage_is_an_mlflow_run(pipeline):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{pipeline / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("cnnlab").experiment_id])
    stages = sorted(r.data.tags["stage"] for r in runs)
    assert stages == ["calibrate", "encode_faces", "encode_faces", "evaluate_faces", "prepare", "train_encoder"]
    by = {r.data.tags["stage"]: r for r in runs}
    assert all(r.info.status == "FINISHED" for r in runs)
    assert by["train_encoder"].data.tags["dataset"] == "orl_faces_ids"
    assert len(client.get_metric_history(by["train_encoder"].info.run_id, "val_eer")) == 2
    ev = by["evaluate_faces"]
    assert 0.0 <= ev.data.metrics["encoder_rank1"] <= 1.0 and "lbp_eer" in ev.data.metrics
    assert "faces/report.md" in {a.path for a in client.list_artifacts(ev.info.run_id, "faces")}


def test_encode_faces_names_an_unreadable_image(pipeline, tmp_path, monkeypatch):
    gallery = tmp_path / "gallery"
    for person in ("ann", "bo"):
        (gallery / person).mkdir(parents=True)
        Image.fromarray(np.full((30, 24), 90, np.uint8), "L").save(gallery / person / "1.pgm")
    (gallery / "bo" / "2.png").write_bytes(b"\x89PNG but not really")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("CNNLAB_CONF", str(REPO / "conf"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=r"bo/2\.png: cannot read image"):
        run_stage("encode_faces", *overrides(pipeline), f"gallery.root={gallery}",
                  f"face.paths.encodings={tmp_path}/enc")
    assert not (tmp_path / "enc").exists()


@pytest.mark.slow
def test_snakemake_runs_the_face_rules(tmp_path):
    """workflow/rules/faces.smk in a scratch copy wired as the lead will wire it (include + face defaults)."""
    repo = copy_repo(tmp_path / "repo")
    snakefile, config = repo / "Snakefile", repo / "conf" / "config.yaml"
    if "faces.smk" not in snakefile.read_text():
        snakefile.write_text(snakefile.read_text().replace(
            'include: "workflow/rules/benchmark.smk"\n',
            'include: "workflow/rules/benchmark.smk"\ninclude: "workflow/rules/faces.smk"\n'))
    if face_group():                                     # face.* overrides reach every stage: list the group
        config.write_text(config.read_text().replace("  - debug: null\n", "  - face: default\n  - debug: null\n"))
    cmd = [str(BIN / "snakemake"), "--cores", "2", "--config", "overrides=debug=tiny face.train.max_epochs=2",
           "--", "reports/faces/metrics.json"]
    env = run_env(tmp_path)
    run(cmd, repo, env)
    metrics = json.loads((repo / "reports/faces/metrics.json").read_text())
    assert 0.25 <= metrics["encoder"]["test"]["rank1"] <= 1.0
    for path in ("logs/train_encoder-ids.log", "logs/bench/evaluate_faces.tsv",
                 "data/encodings/orl_faces_ids-test.threshold.json"):
        assert (repo / path).is_file(), path
    encoder = yaml.safe_load((REPO / "conf/face/default.yaml").read_text())["face"]["encoder"]["name"]
    assert json.loads((repo / f"models/faces/{encoder}-ids/metrics.json").read_text())["epochs"] == 2
    again = run(cmd, repo, env)
    assert "Nothing to be done" in again.stdout + again.stderr
