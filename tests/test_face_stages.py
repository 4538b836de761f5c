"""The face pipeline's stages end to end on the embedded ORL faces, with tiny settings.

prepare (identity split) → align_faces → train_encoder → encode_faces (val, test) → calibrate →
evaluate_faces for the from-scratch encoder; import_dlib → encode_faces → calibrate →
evaluate_faces for dlib's network as is; train_encoder (dlib fine-tuned, head) → encode_faces →
evaluate_faces for the transfer encoder; compare_faces over the three (and its validation-best choice). Each stage runs
through its real Hydra entry point, writing into a temporary folder and a private MLflow
store. The stages run in this process (torch, Lightning and MLflow are imported once: six
interpreters would spend most of a minute on imports alone); the slow test runs the same chain
as Snakemake jobs from workflow/rules/faces.smk.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import BIN, REPO, copy_repo, run, run_env
from cnnlab.track import list_artifacts


def overrides(tmp: Path, encoder: str = "course39") -> list[str]:
    """Every face output under ``tmp`` (per encoder: ``course39`` or the fine-tuned dlib ``dlibft``);
    two epochs, fewer baseline candidates, one thread, no workers."""
    aligned = tmp / "aligned" / "orl_faces_ids"
    common = [f"face.paths.source={tmp}/prepared/orl_faces_ids", f"face.paths.prepared={aligned}",
              f"face.paths.identity_split={aligned}", f"face.paths.comparison={tmp}/reports",
              "face.evaluate.trials=3", "face.evaluate.eigen_components=[10,20]", "face.evaluate.fisher_pca=[10,20]",
              "face.evaluate.lbp_grids=[[4,4]]", "threads=1", "num_workers=0"]
    if encoder == "course39":
        return [*common, "encoder=course39", f"face.paths.run={tmp}/models/enc-ids", f"face.paths.encodings={tmp}/enc",
                f"face.paths.reports={tmp}/reports/course39", "face.train.max_epochs=2",
                "face.encoder.embedding_dim=32"]
    return [*common, "encoder=dlib_resnet_ft", "face.encoder.strategy=head",
            f"face.encoder.init={tmp}/models/dlib/best.ckpt", f"face.paths.run={tmp}/models/dlibft-ids",
            f"face.paths.encodings={tmp}/enc-dlibft", f"face.paths.reports={tmp}/reports/dlibft",
            "face.train.max_epochs=1", "face.train.batches_per_epoch=1", "face.train.p=4", "face.train.k=3",
            "face.evaluate.baselines=false"]


def dlib_overrides(tmp: Path) -> list[str]:
    """dlib's network as is (imported, not trained), its encodings and report under ``tmp``."""
    common = [a for a in overrides(tmp) if a.startswith(("face.paths.source", "face.paths.prepared",
                                                         "face.paths.identity_split", "face.paths.comparison",
                                                         "face.evaluate", "threads", "num_workers"))]
    return [*common, "encoder=dlib_resnet", f"face.paths.run={tmp}/models/dlib", f"face.paths.encodings={tmp}/enc-dlib",
            f"face.paths.reports={tmp}/reports/dlib_resnet", "face.evaluate.baselines=false"]


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
        run_stage("align_faces", *ov)
        run_stage("train_encoder", *ov)
        for split in ("val", "test"):
            run_stage("encode_faces", *ov, f"gallery.root={tmp}/aligned/orl_faces_ids/{split}")
        run_stage("calibrate", *ov)
        run_stage("evaluate_faces", *ov)
        dlib = dlib_overrides(tmp)
        run_stage("import_dlib", *dlib)
        for split in ("val", "test"):
            run_stage("encode_faces", *dlib, f"gallery.root={tmp}/aligned/orl_faces_ids/{split}")
        run_stage("calibrate", *dlib)
        run_stage("evaluate_faces", *dlib)
        ft = overrides(tmp, "dlibft")
        run_stage("train_encoder", *ft)
        for split in ("val", "test"):
            run_stage("encode_faces", *ft, f"gallery.root={tmp}/aligned/orl_faces_ids/{split}")
        run_stage("evaluate_faces", *ft)
        # with the configured default encoder, as the pipeline's compare_faces runs
        run_stage("compare_faces", *[a for a in ov if not a.startswith("encoder=")], "~face.compare.encoders",
                  "+face.compare.encoders={course39:scratch,dlib_resnet:pretrained,dlibft:finetune}",
                  "face.compare.only=null")
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        torch.set_num_threads(threads)
    return tmp


def test_encoder_trains_on_training_people_only(pipeline):
    metrics = json.loads((pipeline / "models/enc-ids/details.json").read_text())   # metrics.json: its numbers
    assert json.loads((pipeline / "models/enc-ids/metrics.json").read_text())["epochs"] == metrics["epochs"]
    ids = json.loads((pipeline / "aligned/orl_faces_ids/dataset.json").read_text())["classes_per_split"]
    assert metrics["train_identities"] == ids["train"] and len(ids["train"]) == 12
    assert metrics["epochs"] == 2 and metrics["best_epoch"] in (0, 1)
    assert 0.25 <= metrics["best_val_rank1"] <= 1.0 and 0.0 <= metrics["best_val_eer"] <= 0.5
    for name in ("best.ckpt", "last.ckpt"):
        assert (pipeline / "models/enc-ids" / name).stat().st_size > 10_000


def test_encodings_are_named_after_the_split_and_hold_its_people(pipeline):
    from cnnlab.face.training.module import checkpoint_hash
    from cnnlab.face.gallery.encodings import load_encodings

    ids = json.loads((pipeline / "aligned/orl_faces_ids/dataset.json").read_text())["classes_per_split"]
    for split in ("val", "test"):
        enc = load_encodings(pipeline / "enc" / f"orl_faces_ids-{split}.npz")
        assert sorted(set(enc.labels)) == ids[split] and len(enc) == 40 and enc.dim == 32
        assert enc.encoder_hash == checkpoint_hash(pipeline / "models/enc-ids/best.ckpt")
        assert Path(enc.encoder_path) == pipeline / "models/enc-ids/best.ckpt"
        alignment = json.loads((pipeline / "aligned/orl_faces_ids/alignment.json").read_text())
        assert enc.preprocess == {k: alignment[k] for k in ("detector", "upsample", "size", "padding")}


def test_encode_faces_aligns_a_folder_of_photos_as_align_faces_did(pipeline, tmp_path, monkeypatch):
    """Unaligned photos (the prepared test split) → the same vectors as the aligned split's."""
    from cnnlab.face.gallery.encodings import load_encodings

    photos = tmp_path / "photos"
    shutil.copytree(pipeline / "prepared/orl_faces_ids/test", photos)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("CNNLAB_CONF", str(REPO / "conf"))
    monkeypatch.chdir(tmp_path)
    run_stage("encode_faces", *overrides(pipeline), f"gallery.root={photos}", f"face.paths.encodings={tmp_path}/enc")
    mine, ref = load_encodings(tmp_path / "enc/photos.npz"), load_encodings(pipeline / "enc/orl_faces_ids-test.npz")
    assert mine.paths == ref.paths and mine.preprocess == ref.preprocess and mine.no_face == []
    np.testing.assert_allclose(mine.embeddings, ref.embeddings, atol=1e-5)
    run_stage("encode_faces", *overrides(pipeline), f"gallery.root={photos}", f"face.paths.encodings={tmp_path}/raw",
              "gallery.align=false")                   # as given: other inputs, other vectors, no recipe
    raw = load_encodings(tmp_path / "raw/photos.npz")
    assert raw.preprocess is None and np.abs(raw.embeddings - ref.embeddings).max() > 0.05


def test_calibration_meets_its_target_far_on_the_validation_pairs(pipeline):
    from cnnlab.face.gallery.encodings import load_encodings
    from cnnlab.face.evaluation.metrics import verification_pairs

    record = json.loads((pipeline / "enc/orl_faces_ids-val.threshold.json").read_text())
    assert record == json.loads((pipeline / "enc/orl_faces_ids-test.threshold.json").read_text())
    val = load_encodings(pipeline / "enc/orl_faces_ids-val.npz")
    dist, same = verification_pairs(val.embeddings, val.labels)
    far = np.mean(dist[~same] <= record["tau"])
    assert far <= record["target_far"] == 0.01 and far == pytest.approx(record["far"])
    assert record["tar"] == pytest.approx(np.mean(dist[same] <= record["tau"]))
    assert (record["n_genuine"], record["n_impostor"]) == (4 * 45, 780 - 180) and not record["seen_in_training"]


def test_report_compares_the_encoder_with_every_baseline_on_the_test_people(pipeline):
    metrics = json.loads((pipeline / "reports/course39/details.json").read_text())
    headline = json.loads((pipeline / "reports/course39/metrics.json").read_text())   # what `dvc metrics show` lists
    assert headline["rank1"] == metrics["encoder"]["test"]["rank1"] and "calibrated_tau" in headline
    assert all(isinstance(v, (int, float)) for v in headline.values())
    assert metrics["split"]["test"] == json.loads(
        (pipeline / "aligned/orl_faces_ids/dataset.json").read_text())["classes_per_split"]["test"]
    assert set(metrics["baselines"]) == {"raw_pixels", "eigenfaces", "fisherfaces", "lbp"}
    for m in [metrics["encoder"], *metrics["baselines"].values()]:
        t = m["test"]
        assert 0.25 <= t["rank1"] <= 1.0 and 0.5 <= t["auc"] <= 1.0 and 0.0 <= t["eer"] <= 0.5
        assert 0.0 <= t["tar_at_far_1pct"] <= 1.0 and t["open_set_far"] <= 0.01 and 0.0 <= t["open_set_dir"] <= 1.0
        assert (t["n_genuine"], t["n_impostor"]) == (180, 600)
    assert metrics["baselines"]["fisherfaces"]["params"]["n_pca"] in (10, 20)
    assert metrics["calibration"]["tau"] > 0 and 0.0 <= metrics["calibration"]["test_far"] <= 1.0
    assert m["test"]["ms_per_face"] > 0 and metrics["encoder"]["test"]["ms_per_face"] > 0
    report = (pipeline / "reports/course39/report.md").read_text()
    assert report.count("\n| ") == 6 and "Fisherfaces" in report and "s12" in report   # header + 5 methods
    for png in ("roc.png", "distances.png"):
        with Image.open(pipeline / "reports/course39" / png) as img:
            assert img.width >= 600 and img.height >= 400


def test_every_stage_is_an_mlflow_run(pipeline):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{pipeline / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("cnnlab").experiment_id])
    stages = sorted(r.data.tags["stage"] for r in runs)
    assert stages == ["align_faces", *["calibrate"] * 2, "compare_faces", *["encode_faces"] * 6, *["evaluate_faces"] * 3,
                      "import_dlib", "prepare", "train_encoder", "train_encoder"]
    by = {r.data.tags["stage"]: r for r in sorted(runs, key=lambda r: r.info.start_time, reverse=True)}
    by["train_encoder"] = next(r for r in runs if r.data.tags["stage"] == "train_encoder"
                               and r.data.tags["model"] == "course39")
    by["evaluate_faces"] = next(r for r in runs if r.data.tags["stage"] == "evaluate_faces"
                                and r.data.tags["model"] == "course39")
    assert all(r.info.status == "FINISHED" for r in runs)
    assert by["train_encoder"].data.tags["dataset"] == "orl_faces_ids"
    assert len(client.get_metric_history(by["train_encoder"].info.run_id, "val/eer")) == 2
    ev = by["evaluate_faces"]
    assert 0.0 <= ev.data.metrics["encoder_rank1"] <= 1.0 and "lbp_eer" in ev.data.metrics
    assert "faces/report.md" in set(list_artifacts(client.tracking_uri, ev.info.run_id, "faces"))


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
    """The face rules under real Snakemake in a scratch copy, up to the comparison table."""
    repo = copy_repo(tmp_path / "repo")
    cmd = [str(BIN / "snakemake"), "--cores", "2", "--config", "overrides=debug=tiny face.train.max_epochs=2",
           "--", "reports/faces/comparison.md"]
    env = run_env(tmp_path)
    run(cmd, repo, env)
    comparison = json.loads((repo / "reports/faces/comparison.json").read_text())
    compare = yaml.safe_load((REPO / "conf/face/default.yaml").read_text())["face"]["compare"]
    assert [r["method"] for r in comparison["rows"][4:]] == (compare["only"] or list(compare["encoders"]))
    for path in ("logs/train_encoder-course39-ids.log", "logs/bench/evaluate_faces-course39.tsv",
                 "data/encodings/dlib_resnet/orl_faces_ids-test.threshold.json", "data/aligned/orl_faces_ids/alignment.json"):
        assert (repo / path).is_file(), path
    assert json.loads((repo / "models/faces/course39-ids/metrics.json").read_text())["epochs"] == 2
    again = run(cmd, repo, env)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_alignment_finds_every_face_and_keeps_the_split(pipeline):
    report = json.loads((pipeline / "aligned/orl_faces_ids/alignment.json").read_text())
    assert report["images"] == 200 and report["detection_rate"] >= 0.95
    assert "ms_per_face" not in report                   # timings stay out of the DVC-cached folder
    timing = json.loads((pipeline / "reports/faces/alignment/orl_faces_ids/metrics.json").read_text())
    assert timing["ms_per_face"]["detection"] > 0 and timing["ms_per_face"]["alignment"] > 0
    src = json.loads((pipeline / "prepared/orl_faces_ids/dataset.json").read_text())
    dst = json.loads((pipeline / "aligned/orl_faces_ids/dataset.json").read_text())
    assert dst["classes_per_split"] == src["classes_per_split"] and dst["channels"] == 3
    with Image.open(next((pipeline / "aligned/orl_faces_ids/test").glob("*/*.png"))) as img:
        assert img.size == (150, 150) and img.mode == "RGB"


def test_dlib_transfer_starts_from_the_imported_weights(pipeline):
    from cnnlab.face.models.dlib_dat import load_dlib_resnet
    from cnnlab.face.models.embedder import load_encoder

    imported, hp = load_encoder(pipeline / "models/dlib/best.ckpt")
    assert hp["arch"] == "dlib_face_resnet" and hp["identities"] == []
    reference = load_dlib_resnet()
    x = torch.rand(2, 3, 150, 150) * 255
    mean = torch.tensor(hp["normalization"]["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(hp["normalization"]["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(imported((x / 255 - mean) / std), reference.embed(x), atol=1e-5)
    tuned, _ = load_encoder(pipeline / "models/dlibft-ids/best.ckpt")
    before, after = imported.state_dict(), tuned.state_dict()
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert changed == ["net.fc.weight"]          # strategy=head: only the embedding layer trains
    metrics = json.loads((pipeline / "models/dlibft-ids/details.json").read_text())
    assert metrics["trainable_params"] == 256 * 128 and metrics["init"].endswith("models/dlib/best.ckpt")


def test_comparison_table_has_baselines_and_both_encoders(pipeline):
    result = json.loads((pipeline / "reports/comparison.json").read_text())
    methods = [r["method"] for r in result["rows"]]
    assert set(methods[:4]) == {"raw pixels", "Eigenfaces (PCA)", "Fisherfaces (PCA+LDA)", "LBP histograms"}
    assert methods[4:] == ["course39", "dlib_resnet", "dlib_resnet_ft_head"]  # encoders' names, not their folders
    dlib = result["rows"][-1]
    assert dlib["group"] == "dlib imported + fine-tuned" and dlib["rank1"] >= 0.9 and dlib["eer"] <= 0.1
    assert all(r["ms_per_face"] > 0 for r in result["rows"])
    table = (pipeline / "reports/comparison.md").read_text()
    assert table.count("\n| ") == 8 and "detection" in table


def test_the_default_encoder_is_the_validation_best_one(pipeline, monkeypatch):
    """compare_faces measures every encoder on the validation people; the one it finds best is the
    configured default that `cnnlab face` and the face stages read (conf/faces.yaml's `encoder`)."""
    from cnnlab.face.cli import config_defaults

    result = json.loads((pipeline / "reports/comparison.json").read_text())
    encoders = {r["key"]: r for r in result["rows"] if r["group"] != "hand-engineered"}
    best = result["default"]["validation_best"]
    assert best == min(encoders, key=lambda k: (encoders[k]["val_eer"], -encoders[k]["val_rank1"]))
    assert encoders[best]["val_eer"] < encoders["course39"]["val_eer"]   # chosen on validation people only
    monkeypatch.setenv("CNNLAB_CONF", str(REPO / "conf"))
    face = config_defaults()
    assert face["encoder"]["name"] == best == result["default"]["configured"]
    assert result["default"]["configured_is_best"] is True
    assert face["paths"]["encoder"] == f"models/faces/{best}/best.ckpt"
    assert face["paths"]["gallery"].startswith(f"data/encodings/{best}/")
    assert f"Configured default (`conf/faces.yaml` `encoder`, used by the face stages and `cnnlab face`): `{best}`." \
        in (pipeline / "reports/comparison.md").read_text()
