"""The real pipeline on a tiny config: Snakemake in a scratch copy, DVC in a scratch git repo."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from conftest import BIN, run, run_env
from cnnlab.track import list_artifacts

# Tiny versions of the default pipeline: every stage type, fewer jobs.
# Faces: from scratch, and dlib imported then fine-tuned (head); test_face_stages covers the rest.
SNAKEMAKE_TINY = """overrides: debug=tiny
models: [lenet5]
train: {lenet5: {optim: adam, lr: 0.002, epochs: 2, augment: affine}}
seeds: [0, 1]
face_seeds: [0, 1]
face_encoders: [course39, dlib_resnet_ft_head]
transfer: {source: digits_0to4, target: digits_5to9, model: lenet5, seed: 0, strategies: [scratch, full], shots: [5]}
"""
DVC_TINY = (SNAKEMAKE_TINY.replace("[0, 1]", "[0]").replace("[scratch, full]", "[head]")
            .replace("[course39, dlib_resnet_ft_head]", "[course39]"))
# `make test` runs the course's first half (digits, transfer, faces) for real under Snakemake; the whole
# DAG (+ scenes: detectors, windows, localiser, landmarks, U-Net, units, style) is the slow test below,
# as is its DVC twin. tests/test_reruns.py runs every rule of the whole DAG under Snakemake with a
# stand-in `python` (the tools' bookkeeping); the week-3/4 tasks run in-process or as stages in
# tests/test_detect_tasks.py, test_detect_pipeline.py, test_segment_train.py and test_style_transfer.py.
FIRST_HALF = ["select", "compare_faces", "benchmark_faces", "reports/finetune/digits_5to9/table.md",
              "reports/benchmark/digits/lenet5/table.md", "data/augmented/digits",
              "data/prepared/orl_faces"]
WEEK3_4 = ["reports/detection/scenes/compare/table.md", "reports/segmentation/scenes/unet/metrics.json",
           "reports/detection/scenes/windows/metrics.json", "reports/detection/scenes/localiser/metrics.json",
           "reports/detection/scenes/landmarks/metrics.json"]
EVAL = Path("reports/eval/digits/lenet5/seed0")
RUN = Path("models/digits/lenet5/seed0")
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


def _assert_outputs(root: Path) -> None:
    for p in ("data/prepared/digits/manifest.csv", "data/prepared/orl_faces/dataset.json",
              "data/prepared/orl_faces_ids/dataset.json", RUN / "best.ckpt", RUN / "last.ckpt",
              EVAL / "metrics.json", EVAL / "predictions.csv", EVAL / "confusion.png",
              "reports/benchmark/digits/lenet5/table.md", "reports/benchmark/orl_faces_ids/metrics.json",
              "reports/selection/selection.json", "reports/finetune/digits_5to9/table.md",
              "data/augmented/digits/preview.png", "reports/faces/comparison.md", "reports/faces/course39/roc.png"):
        assert (root / p).is_file(), p
    metrics = json.loads((root / EVAL / "metrics.json").read_text())
    assert metrics["n"] > 0 and 0.0 <= metrics["accuracy"] <= 1.0
    ids = json.loads((root / "data/prepared/orl_faces_ids/dataset.json").read_text())["classes_per_split"]
    assert not set(ids["train"]) & (set(ids["val"]) | set(ids["test"]))


def _assert_headline_metrics(root: Path, at_least: int) -> None:
    """Every file dvc.yaml declares as metrics (cnnlab.dag: each `metrics.json` output) holds headline
    numbers only, so that `dvc metrics show` is a table of scores: no hashes, paths, names, lists or
    per-class tables (those go to non-metrics outputs such as the faces' details.json)."""

    def leaves(node, key=""):
        if isinstance(node, dict):
            for k, v in node.items():
                yield from leaves(v, f"{key}.{k}" if key else k)
        else:
            yield key, node

    files = sorted(p for d in ("models", "reports") for p in (root / d).rglob("metrics.json"))
    assert len(files) >= at_least, files
    for path in files:
        found = list(leaves(json.loads(path.read_text())))
        bad = [(k, v) for k, v in found if not isinstance(v, (int, float))]
        assert not bad, f"{path.relative_to(root)}: not a number: {bad[:5]}"
        assert found, f"{path.relative_to(root)} is empty"
        assert not [k for k, _ in found if re.search(r"per_class|confusion|hash|sha256|path|checkpoint", k)], path


def _mlflow_runs(db: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.get_experiment_by_name("cnnlab")
    return client, client.search_runs([exp.experiment_id])


def _snakemake_twice(repo_copy: Path, *targets: str) -> None:
    """A real Snakemake run of ``targets`` (default: the whole DAG) on the tiny config, then a no-op rerun."""
    env = run_env(repo_copy)
    (repo_copy / "tiny.yaml").write_text(SNAKEMAKE_TINY)
    cmd = [str(BIN / "snakemake"), *targets, "--cores", "2", "--configfile", "tiny.yaml"]   # (--configfile takes a list)
    run(cmd, repo_copy, env)
    _assert_outputs(repo_copy)

    again = run(cmd, repo_copy, env)
    assert "Nothing to be done" in again.stdout + again.stderr
    assert "rule train" not in again.stdout + again.stderr


def test_snakemake_first_half_then_noop_rerun(repo_copy: Path):
    _snakemake_twice(repo_copy, *FIRST_HALF)
    assert not (repo_copy / "data/prepared/scenes").exists()     # the scenes' stages are the slow test's

    client, runs = _mlflow_runs(repo_copy / "mlflow.db")
    by_stage = {}
    for r in runs:
        by_stage.setdefault(r.data.tags["stage"], []).append(r)
    assert len(by_stage["prepare"]) == 5 and len(by_stage["evaluate"]) == 2  # digits (3), orl_faces (2)
    assert len(by_stage["train"]) == 3  # digits × seeds 0, 1 and the transfer source digits_0to4
    assert len(by_stage["benchmark"]) == 1 and len(by_stage["finetune"]) == 2
    assert (repo_copy / "models/digits/lenet5/seed1/best.ckpt").is_file()
    assert len(by_stage["finetune_compare"]) == 1 and len(by_stage["select"]) == 1
    assert {"train_encoder", "encode_faces", "calibrate", "evaluate_faces"} <= set(by_stage)
    assert {"import_dlib", "align_faces", "compare_faces"} <= set(by_stage)
    rows = json.loads((repo_copy / "reports/faces/comparison.json").read_text())["rows"]
    assert [r["key"] for r in rows if r["group"] != "hand-engineered"] == ["course39", "dlib_resnet_ft_head"]
    assert len(rows) == 6                                       # + the four baselines, scored once
    train = next(r for r in by_stage["train"] if r.data.params["seed"] == "0" and r.data.tags["dataset"] == "digits")
    assert train.info.status == "FINISHED"
    assert train.data.tags["dataset"] == "digits" and train.data.tags["model"] == "lenet5"
    assert train.data.tags["git_commit"]
    assert train.data.params["model.name"] == "lenet5"
    assert train.data.params["trainer.max_epochs"] == "2"
    assert "best_val_acc" in train.data.metrics
    assert len(client.get_metric_history(train.info.run_id, "val/acc")) == 2  # one point per epoch
    ev = by_stage["evaluate"][0]
    assert "accuracy" in ev.data.metrics
    _assert_headline_metrics(repo_copy, at_least=15)
    artifacts = set(list_artifacts(client.tracking_uri, ev.info.run_id, "eval"))
    assert {"eval/confusion.png", "eval/metrics.json", "eval/predictions.csv"} <= artifacts


def _dvc_repo(repo_copy: Path) -> dict:
    """``repo_copy`` as a git + DVC repository whose dvc.yaml is generated for the tiny config."""
    env = run_env(repo_copy)
    # Same generator as the committed dvc.yaml, with the tiny overrides baked into the commands.
    (repo_copy / "tiny.yaml").write_text(DVC_TINY)
    # dvc.yaml's train commands read their knobs from params.yaml (`dvc exp run -S`): tiny ones here
    params = repo_copy / "params.yaml"
    params.write_text(params.read_text().replace("epochs: 15", "epochs: 2").replace("epochs: 3", "epochs: 1"))
    run([sys.executable, "-m", "cnnlab.dag", "--configfile", "tiny.yaml"], repo_copy, env)
    assert "debug=tiny" in (repo_copy / "dvc.yaml").read_text()
    run(["git", "init", "-q"], repo_copy, env)
    assert (repo_copy / ".dvc/config").is_file()                  # a DVC repository as cloned
    # the default remote is a folder in $HOME: point this scratch copy at its own, as a team would
    (repo_copy / ".dvc/config.local").write_text(f"['remote \"local\"']\n    url = {repo_copy.parent / 'remote'}\n")
    run([*GIT, "add", "-A"], repo_copy, env)
    run([*GIT, "commit", "-qm", "init"], repo_copy, env)
    return env


def _repro_twice(repo_copy: Path, env: dict, *targets: str) -> None:
    run([str(BIN / "dvc"), "repro", *targets], repo_copy, env)
    assert (repo_copy / "dvc.lock").is_file()
    again = run([str(BIN / "dvc"), "repro", *targets], repo_copy, env)
    out = again.stdout + again.stderr
    assert "Running stage" not in out
    assert "up to date" in out


def test_dvc_repro_then_noop(repo_copy: Path):
    """`dvc repro` of two end stages and everything upstream: digits → select, faces → compare_faces.

    The whole DAG under DVC is the slow test below; tests/test_dag.py checks that every Snakemake
    job is a DVC stage with the same command, deps and outs.
    """
    env = _dvc_repo(repo_copy)
    _repro_twice(repo_copy, env, "select", "compare_faces")
    for p in (RUN / "best.ckpt", EVAL / "metrics.json", "reports/selection/selection.json",
              "data/aligned/orl_faces_ids/alignment.json", "reports/faces/course39/roc.png",
              "reports/faces/comparison.md"):
        assert (repo_copy / p).is_file(), p
    assert not (repo_copy / "reports/benchmark").exists()          # not upstream of the targets: not run
    shown = run([str(BIN / "dvc"), "metrics", "show", "--json"], repo_copy, env)
    assert "accuracy" in shown.stdout

    # A DVC experiment turns a params.yaml knob: it reruns what the knob reaches, and `dvc exp show`
    # lists it with its param and metrics.
    run([*GIT, "add", "-A"], repo_copy, env)
    run([*GIT, "commit", "-qm", "lock"], repo_copy, env)
    before = (repo_copy / RUN / "best.ckpt").read_bytes()
    exp = run([str(BIN / "dvc"), "exp", "run", "-n", "lr004", "-S", "train.lenet5.lr=0.004",
               "evaluate-digits-lenet5-seed0"], repo_copy, env)
    out = exp.stdout + exp.stderr
    assert "Running stage 'train-digits-lenet5-seed0'" in out and "Running stage 'prepare-digits'" not in out
    assert (repo_copy / RUN / "best.ckpt").read_bytes() != before
    table = json.loads(run([str(BIN / "dvc"), "exp", "show", "--json"], repo_copy, env).stdout)
    assert "lr004" in json.dumps(table) and "0.004" in json.dumps(table)


@pytest.mark.slow
def test_snakemake_whole_dag_then_noop(repo_copy: Path):
    _snakemake_twice(repo_copy)
    for p in WEEK3_4:
        assert (repo_copy / p).is_file(), p
    assert (repo_copy / "reports/visualise/digits").is_dir() and list((repo_copy / "reports/style").glob("*.png"))
    _assert_headline_metrics(repo_copy, at_least=25)


@pytest.mark.slow
def test_dvc_repro_whole_dag_then_noop(repo_copy: Path):
    env = _dvc_repo(repo_copy)
    _repro_twice(repo_copy, env)
    _assert_outputs(repo_copy)
