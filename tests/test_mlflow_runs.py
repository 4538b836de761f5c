"""MLflow as its users expect, against a real ``mlflow server``: runs nested under one pipeline
parent, names that say what differs, standard tags, links from evaluate/select to the train run,
``train/…``/``val/…`` metrics and facts as params, artifacts, the registered ``champion`` loading
back through MLflow, and an artifact root that survives moving the repository."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from mlflow_server import mlflow_server

from conftest import REPO, run, run_env, stage

from cnnlab.stages._app import run_name
from cnnlab.track import FACT, Tracker, list_artifacts


def test_run_names_say_what_differs():
    tags = {"dataset": "digits", "model": "lenet5", "seed": 3}
    assert run_name("train", tags) == "train-digits-lenet5-seed3"
    # sweep children differ by their overrides; paths/threads/data/model are never in a name
    a = run_name("train", tags, ["optim.lr=0.001", "threads=2", "paths.run=x", "model=lenet5"])
    b = run_name("train", tags, ["optim.lr=0.01", "threads=2", "paths.run=x", "model=lenet5"])
    assert a == "train-digits-lenet5-seed3-optim.lr=0.001" and a != b
    ft = run_name("finetune", {"dataset": "d", "model": "m", "strategy": "head", "shots": 5, "seed": 0})
    assert ft == "finetune-d-m-head-shots5-seed0"
    assert run_name("import_dlib", {"model": "dlib_resnet"}) == "import_dlib-dlib_resnet"


def test_facts_are_not_metrics():
    assert all(FACT.match(k) for k in ("num_params", "epochs", "n_train", "n_classes", "model_size_mb"))
    assert not any(FACT.match(k) for k in ("accuracy", "val/acc", "latency_ms_per_image", "best_score"))


def test_parallel_stages_create_one_pipeline_parent(tmp_path: Path):
    """Three processes start at once with the same CNNLAB_PIPELINE_RUN: one parent, three children."""
    code = ("import sys; from cnnlab.track import Tracker\n"
            "t = Tracker('s', {'i': sys.argv[1]}, tags={'dataset': 'd'}, run_name='s' + sys.argv[1]).start(); t.end()\n")
    env = run_env(tmp_path, CNNLAB_PIPELINE_RUN="race1", PYTHONPATH=str(REPO / "src"))
    procs = [subprocess.Popen([sys.executable, "-c", code, str(i)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(3)]
    for p in procs:
        out = p.communicate(timeout=300)[0]
        assert p.returncode == 0, out[-2000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("cnnlab").experiment_id])
    parents = [r for r in runs if r.data.tags.get("stage") == "pipeline"]
    assert len(parents) == 1 and parents[0].info.run_name == "pipeline-race1"
    children = [r for r in runs if r.data.tags.get("stage") == "s"]
    assert len(children) == 3
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert parents[0].info.status == "FINISHED"


def _runs(client, exp_id):
    return {r.data.tags["stage"]: r for r in client.search_runs([exp_id])}


@pytest.mark.slow  # four stages in a row (about a minute on an idle 2-core machine): make test-slow
def test_pipeline_on_a_real_server(tmp_path: Path):
    """prepare → train → evaluate → select, as one pipeline invocation, on an ``mlflow server``."""
    from mlflow.tracking import MlflowClient

    with mlflow_server(tmp_path, tmp_path / "server.db", tmp_path / "artifacts") as base:
        env = run_env(tmp_path, MLFLOW_TRACKING_URI=base, CNNLAB_PIPELINE_RUN="test-1")
        common = ["debug=tiny", f"paths.prepared={tmp_path / 'prep'}", f"paths.run={tmp_path / 'run'}",
                  f"paths.eval={tmp_path / 'eval'}", "trainer.enable_progress_bar=false"]
        run(stage("prepare", *common), REPO, env, timeout=600)
        train = run(stage("train", *common, "optim.lr=0.01"), REPO, env, timeout=600)
        run(stage("evaluate", *common), REPO, env, timeout=600)
        sel = run(stage("select", f"select.metrics=[{tmp_path / 'eval' / 'metrics.json'}]",
                        f"select.checkpoints=[{tmp_path / 'run' / 'best.ckpt'}]",
                        f"select.out={tmp_path / 'sel'}", "select.latency_budget_ms=1000"), REPO, env, timeout=600)

        client = MlflowClient(base)
        exp = client.get_experiment_by_name("cnnlab")
        runs = _runs(client, exp.experiment_id)
        assert set(runs) == {"pipeline", "prepare", "train", "evaluate", "select"}
        parent = runs.pop("pipeline")
        assert {r.data.tags["mlflow.parentRunId"] for r in runs.values()} == {parent.info.run_id}
        tr, ev, se = runs["train"], runs["evaluate"], runs["select"]
        assert tr.info.run_name == "train-digits-lenet5-seed0-optim.lr=0.01"
        for r in runs.values():  # MLflow's own tags: "Source", "User", git commit in the UI
            assert r.data.tags["mlflow.source.name"] == f"cnnlab.stages.{r.data.tags['stage']}"
            assert r.data.tags["mlflow.source.type"] == "LOCAL" and r.data.tags["mlflow.user"]
            assert r.data.tags["mlflow.source.git.commit"] in r.data.tags["git_commit"]
        # links to the train run
        assert ev.data.tags["cnnlab.train_run_id"] == tr.info.run_id
        assert se.data.tags["cnnlab.train_run_id"] == tr.info.run_id
        # metrics as in the progress bar, per epoch; facts as params
        history = client.get_metric_history(tr.info.run_id, "val/acc")
        assert [m.step for m in history] == [0, 1]
        assert "train/loss" in tr.data.metrics and "val_acc" not in tr.data.metrics
        assert "num_params" not in tr.data.metrics and int(tr.data.params["num_params"]) > 1000
        assert tr.data.params["epochs"] == "2"
        # artifacts: the resolved config, the checkpoint, the per-epoch log
        names = set(list_artifacts(client.tracking_uri, tr.info.run_id))
        assert {"config.yaml", "history.csv", "learning_curves.png", "metrics.json", "model"} <= names
        assert list_artifacts(client.tracking_uri, tr.info.run_id, "model") == ["model/best.ckpt"]
        # history.csv beside the checkpoint, one row per epoch, DVC-plottable
        rows = list(csv.DictReader(open(tmp_path / "run" / "history.csv")))
        assert [r["epoch"] for r in rows] == ["0", "1"] and {"train/loss", "val/acc", "val/loss"} <= set(rows[0])
        # each stage ends with one line: what it wrote and its run with the UI URL
        last = train.stdout.strip().splitlines()[-1]
        assert last.startswith(f"train wrote {tmp_path / 'run'}; MLflow run {tr.info.run_id}")
        assert f"{base}/#/experiments/{exp.experiment_id}/runs/{tr.info.run_id}" in last
        assert "registered" in sel.stdout.strip().splitlines()[-1]
        # the champion loads back through MLflow and predicts what the checkpoint predicts
        import mlflow

        from cnnlab.tasks.classifier import load_checkpoint

        mv = client.get_model_version_by_alias("cnnlab-classifier", "champion")
        assert mv.run_id == se.info.run_id
        mlflow.set_tracking_uri(base)
        model = mlflow.pyfunc.load_model("models:/cnnlab-classifier@champion")
        x = np.random.default_rng(0).random((3, 1, 32, 32), dtype=np.float32)
        probs = model.predict(x)
        net, hp = load_checkpoint(tmp_path / "run" / "best.ckpt")
        import torch

        mean, std = hp["normalization"]["mean"][0], hp["normalization"]["std"][0]
        with torch.inference_mode():
            want = torch.softmax(net((torch.from_numpy(x) - mean) / std), 1).numpy()
        assert probs.shape == (3, 10) and np.allclose(probs, want, atol=1e-5)


def test_artifact_root_survives_moving_the_repository(tmp_path: Path):
    """Runs logged in repo ``a`` (sqlite store), ``a`` moved to ``b``: old and new artifacts are
    served from ``b`` by a server started there, and nothing is written to the old place."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    code = ("import sys, pathlib; from cnnlab.track import Tracker\n"
            "p = pathlib.Path('note.txt'); p.write_text(sys.argv[1])\n"
            "t = Tracker('s', {}, run_name=sys.argv[1]).start(); t.log_artifact(p); t.end(); print(t.run_id)\n")

    def log(repo: Path, text: str) -> str:
        env = run_env(repo, PYTHONPATH=str(REPO / "src"))
        env["MLFLOW_TRACKING_URI"] = ""  # the default store: sqlite:///<cwd>/mlflow.db
        return run([sys.executable, "-c", code, text], repo, env).stdout.strip().splitlines()[-1]

    first = log(a, "before")
    shutil.move(a, b)
    second = log(b, "after")
    assert not a.exists()
    with mlflow_server(b, b / "mlflow.db", b / "mlartifacts") as base:
        for run_id, text in ((first, "before"), (second, "after")):
            url = f"{base}/get-artifact?path=note.txt&run_uuid={run_id}"
            with urllib.request.urlopen(url, timeout=30) as resp:
                assert resp.read().decode() == text
    assert not a.exists()
