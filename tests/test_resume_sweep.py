"""Resume after an interruption, and Hydra sweeps as nested MLflow runs."""

from __future__ import annotations

import signal

import lightning as L
import pytest
from conftest import REPO, run, run_env, stage

from cnnlab.tasks.fit import fit
from cnnlab.tasks.skeleton import Interrupted


class _InterruptAfterFirstEpoch(L.Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            raise KeyboardInterrupt  # what Ctrl-C does; Lightning shuts down gracefully


def test_resume_finishes_with_same_epoch_count_and_keeps_best(hydra_cfg, tiny_digits, tmp_path):
    common = ["debug=tiny", "num_workers=0", "trainer.max_epochs=3", "early_stopping.patience=10",
              "trainer.enable_progress_bar=false", f"paths.prepared={tiny_digits}"]
    reference = fit(hydra_cfg(*common, f"paths.run={tmp_path / 'ref'}"))

    cfg = hydra_cfg(*common, f"paths.run={tmp_path / 'run'}")
    with pytest.raises(Interrupted, match=r"SIGINT during epoch 1; kept .*last\.ckpt \(1 epoch\(s\) done\); rerun "
                                          r"the same command with resume=true") as err:
        fit(cfg, callbacks=[_InterruptAfterFirstEpoch()])  # Lightning shuts down gracefully
    assert err.value.exit_code == 128 + signal.SIGINT
    assert not (tmp_path / "run").exists(), "an interrupted run publishes nothing"
    assert (tmp_path / ".run.partial" / "last.ckpt").is_file()

    resumed = fit(hydra_cfg(*common, f"paths.run={tmp_path / 'run'}", "resume=true"))
    assert resumed["epochs"] == reference["epochs"] == 3
    # Same seed, same data order, every generator restored: the resumed run is the uninterrupted one.
    assert resumed == reference
    assert not (tmp_path / ".run.partial").exists()


def test_multirun_sweep_nests_runs_under_one_parent(tiny_digits, tmp_path):
    env = run_env(tmp_path)
    run(stage("train", "-m", "debug=tiny", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
              f"paths.prepared={tiny_digits}", f"paths.run={tmp_path / 'run'}", "optim.lr=0.001,0.01",
              f"hydra.sweep.dir={tmp_path / 'sweep'}"), REPO, env)
    # one folder per job, named by Hydra's override_dirname
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert len(names) == 2 and "optim.lr=0.001," in names[0] and "optim.lr=0.01," in names[1]
    assert all((tmp_path / "run" / n / "best.ckpt").is_file() for n in names)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("cnnlab").experiment_id])
    parents = [r for r in runs if r.data.tags["stage"] == "sweep"]
    children = [r for r in runs if r.data.tags["stage"] == "train"]
    assert len(parents) == 1 and len(children) == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert sorted(r.data.params["optim.lr"] for r in children) == ["0.001", "0.01"]
    assert parents[0].info.status == "FINISHED"
