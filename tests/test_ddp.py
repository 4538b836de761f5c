"""Beyond one process: a real DDP train run on CPU (slow) and the SLURM Snakemake profile."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from conftest import BIN, REPO, run, run_env, stage

from cnnlab.tasks.classifier import load_checkpoint

PROFILE = REPO / "workflow" / "profiles" / "slurm" / "config.yaml"


@pytest.mark.slow
def test_ddp_two_cpu_processes_train_and_only_rank_zero_publishes(tmp_path, tiny_digits):
    from mlflow.tracking import MlflowClient

    out = tmp_path / "run"
    res = run(stage("train", "debug=tiny", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                    "trainer.precision=32-true", "trainer.enable_progress_bar=false",
                    "trainer.speed.gpu_augment.flip=false",  # digits: a mirrored 3 is no 3
                    f"paths.prepared={tiny_digits}", f"paths.run={out}", "threads=1"),
              REPO, run_env(tmp_path), timeout=900)
    log = res.stdout + res.stderr
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in log and "GLOBAL_RANK: 1, MEMBER: 2/2" in log  # two processes

    assert {"best.ckpt", "last.ckpt", "metrics.json", "history.csv", "learning_curves.png"} <= {p.name for p in out.iterdir()}
    assert not list(tmp_path.glob(".run*")), "no partial folder left behind"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and 0 <= metrics["best_val_acc"] <= 1
    model, hp = load_checkpoint(out / "best.ckpt")
    assert hp["arch"] == "lenet5" and model(torch.zeros(1, 1, 32, 32)).shape == (1, 10)

    # one MLflow run, from rank 0, with the per-epoch metrics of its callback
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])
            if r.data.tags.get("stage") == "train"]
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert len(client.get_metric_history(runs[0].info.run_id, "val/acc")) == 2
    assert runs[0].data.params["trainer.strategy"] == "ddp"


def test_slurm_profile_names_real_rules_and_asks_gpus_for_training(tmp_path):
    profile = yaml.safe_load(PROFILE.read_text())
    assert profile["executor"] == "slurm"
    rules = set(run([str(BIN / "snakemake"), "--list-rules"], REPO, run_env(tmp_path)).stdout.split())
    assert "train" in rules
    assert set(profile["set-resources"]) <= rules, "set-resources names a rule the Snakefile lacks"
    assert set(profile["set-threads"]) <= rules
    for rule, resources in profile["set-resources"].items():
        assert resources["gpu"] >= 1 and resources["runtime"] > profile["default-resources"]["runtime"], rule
    assert {"mem_mb", "runtime"} <= set(profile["default-resources"])
