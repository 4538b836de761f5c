"""Training reliability (issue 14): real kills and signals, exact resume, portable checkpoints, one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, run, run_env, stage

from cnnlab.checkpoint import CheckpointMissing, CheckpointRefused, CheckpointTruncated, read
from cnnlab.tasks.fit import fit

# Tiny digits, 6 epochs that keep improving, workers on (their augmentation must resume exactly too).
TRAIN = ["debug=tiny", "early_stopping.patience=10", "optim.lr=0.01", "num_workers=1",
         "threads=1", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return read(path)["state_dict"]


def _runs(env: dict[str, str]):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("cnnlab")
    return client, sorted(client.search_runs([exp.experiment_id]), key=lambda r: r.info.start_time)


def _start_and_wait(cmd: list[str], env: dict[str, str], partial: Path, log: Path) -> subprocess.Popen:
    """Start a training stage; return once its first epoch's partial last.ckpt exists."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while not (partial / "last.ckpt").is_file():
        assert proc.poll() is None, f"training ended before it could be interrupted:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, "no partial checkpoint after 300 s"
        time.sleep(0.02)
    return proc


@pytest.mark.slow  # two stage processes and ten epochs (the fast set resumes in-process: test_resume_sweep)
def test_kill_9_then_resume_equals_the_uninterrupted_run(tiny_digits, tmp_path):
    env = run_env(tmp_path)
    common = [*TRAIN, "trainer.max_epochs=5", f"paths.prepared={tiny_digits}"]
    reference = fit(_compose(*common, f"paths.run={tmp_path / 'ref'}"))

    out, partial = tmp_path / "run", tmp_path / ".run.partial"
    proc = _start_and_wait(stage("train", *common, f"paths.run={out}"), env, partial, tmp_path / "killed.log")
    os.killpg(proc.pid, signal.SIGKILL)  # the whole job: the stage and its DataLoader worker
    assert proc.wait(60) == -signal.SIGKILL
    assert not out.exists() and (partial / "last.ckpt").is_file(), "a killed run publishes nothing, keeps its partial"
    client, (killed,) = _runs(env)
    assert killed.info.status == "RUNNING"  # nobody could tell MLflow

    run(stage("train", *common, f"paths.run={out}", "resume=true"), REPO, env)
    assert json.loads((out / "metrics.json").read_text()) == reference
    for name in ("best.ckpt", "last.ckpt"):
        ref, res = _weights(tmp_path / "ref" / name), _weights(out / name)
        assert ref.keys() == res.keys() and all(torch.equal(ref[k], res[k]) for k in ref), f"{name} differs"
    # last.ckpt is the last epoch (Lightning counts epochs from 0), not the best one
    assert read(out / "last.ckpt")["epoch"] == reference["epochs"] - 1 == 4
    assert not partial.exists()
    client, (old, new) = _runs(env)
    assert old.info.status == "KILLED" and new.info.status == "FINISHED"
    assert new.data.tags["cnnlab.resumed_from"] == old.info.run_id
    assert client.get_run(old.info.run_id).data.tags["cnnlab.resumed_by"] == new.info.run_id


def _compose(*overrides: str):
    from cnnlab.stages._app import compose

    torch.set_num_threads(1)
    return compose(*overrides, conf=REPO / "conf")


def test_sigterm_exits_non_zero_keeps_the_partial_and_marks_the_run_killed(tiny_digits, tmp_path):
    env = run_env(tmp_path)
    out, partial = tmp_path / "run", tmp_path / ".run.partial"
    cmd = stage("train", *TRAIN, "trainer.max_epochs=60", f"paths.prepared={tiny_digits}", f"paths.run={out}")
    log = tmp_path / "term.log"
    proc = _start_and_wait(cmd, env, partial, log)
    os.killpg(proc.pid, signal.SIGTERM)  # as SLURM and Snakemake stop a job: every process of it
    assert proc.wait(120) == 128 + signal.SIGTERM
    text = log.read_text()
    assert "stage train interrupted: training interrupted by SIGTERM" in text
    assert "rerun the same command with resume=true" in text and str(partial / "last.ckpt") in text
    assert not out.exists() and (partial / "last.ckpt").is_file()
    _, (r,) = _runs(env)
    assert r.info.status == "KILLED"


def test_last_ckpt_is_every_epoch_and_two_clones_write_identical_bytes(tiny_digits, tmp_path):
    common = [*TRAIN, "trainer.max_epochs=3", "num_workers=0", f"paths.prepared={tiny_digits}"]
    a = fit(_compose(*common, f"paths.run={tmp_path / 'clone_a' / 'run'}"))
    b = fit(_compose(*common, f"paths.run={tmp_path / 'clone_b' / 'deeper' / 'run'}"))
    assert a == b
    for name in ("best.ckpt", "last.ckpt"):
        bytes_a = (tmp_path / "clone_a" / "run" / name).read_bytes()
        assert bytes_a == (tmp_path / "clone_b" / "deeper" / "run" / name).read_bytes(), name
        assert str(tmp_path).encode() not in bytes_a, f"{name} holds an absolute path"
    last = read(tmp_path / "clone_a" / "run" / "last.ckpt")
    assert last["epoch"] == a["epochs"] - 1 and last["global_step"] == a["epochs"] * 2  # 84 images, batch 64


# ------------------------------------------------------------------ one-line errors (issue 14, defects 6 and 7)

def _stage_in_process(monkeypatch, tmp_path, name: str, *overrides: str) -> str:
    """Run a stage as ``python -m cnnlab.stages.<name>`` would, in this process; return its error line."""
    import importlib

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("CNNLAB_CONF", str(REPO / "conf"))
    monkeypatch.setattr("sys.argv", [name, *overrides])
    with pytest.raises(SystemExit) as err:
        importlib.import_module(f"cnnlab.stages.{name}").main()
    message = str(err.value.code)
    assert "\n" not in message and "\x1b" not in message, message
    return message


@pytest.mark.parametrize("override,expected", [
    ("optim.lr=abc", r"optim\.lr='abc': torch\.optim\.Adam expects"),
    ("optim.lr=-1", r"optim: Invalid learning rate: -1"),
    ("trainer.max_epochs=abc", r"trainer\.max_epochs='abc': lightning\.(pytorch\.)?Trainer expects"),
    ("seed=abc", r"seed='abc': must be an integer from 0 to 4294967295"),
])
def test_bad_values_name_their_key(monkeypatch, tmp_path, tiny_digits, override, expected):
    message = _stage_in_process(monkeypatch, tmp_path, "train", "debug=tiny", f"paths.prepared={tiny_digits}",
                                f"paths.run={tmp_path / 'run'}", override)
    assert message.startswith("error: ") and __import__("re").search(expected, message), message
    assert not (tmp_path / "run").exists() and not (tmp_path / ".run.partial").exists()


def test_bad_seed_as_a_module_names_seed_and_the_stage(tmp_path):
    res = run(stage("train", "seed=-1"), REPO, run_env(tmp_path), check=False)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1] == "error: seed=-1: must be an integer from 0 to 4294967295"
    assert "stage train failed" in res.stdout and "__main__" not in res.stdout


def test_truncated_partial_checkpoint_on_resume_is_named(monkeypatch, tmp_path, tiny_digits):
    partial = tmp_path / ".run.partial"
    fit(_compose(*TRAIN, "trainer.max_epochs=1", "num_workers=0", f"paths.prepared={tiny_digits}",
                 f"paths.run={tmp_path / 'done'}"))
    partial.mkdir()
    data = (tmp_path / "done" / "last.ckpt").read_bytes()
    (partial / "last.ckpt").write_bytes(data[: len(data) // 2])
    message = _stage_in_process(monkeypatch, tmp_path, "train", "debug=tiny", f"paths.prepared={tiny_digits}",
                                f"paths.run={tmp_path / 'run'}", "resume=true")
    assert message.startswith(f"error: {partial / 'last.ckpt'}: partial checkpoint is truncated or corrupt")
    assert f"delete {partial} to train from scratch" in message and "pickles" not in message


@pytest.fixture
def good_ckpt(tmp_path) -> Path:
    path = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.arange(4000.0)}, "hyper_parameters": {"arch": "x"}}, path)
    return path


@pytest.mark.parametrize("damage", ["half", "empty", "flipped_byte"])
def test_truncated_or_damaged_checkpoint_is_not_called_refused(good_ckpt, damage):
    data = bytearray(good_ckpt.read_bytes())
    if damage == "half":
        data = data[: len(data) // 2]
    elif damage == "empty":
        data = bytearray()
    else:  # inside the tensor's bytes: torch itself would load it without a word
        data[bytes(data).index(b"data/0") + 1000] ^= 0xFF
    good_ckpt.write_bytes(bytes(data))
    with pytest.raises(CheckpointTruncated, match="is truncated or corrupt") as err:
        read(good_ckpt)
    assert "pickles" not in str(err.value) and "refused" not in str(err.value)


class _Payload:
    pass


def test_refusal_names_the_object_without_ansi_escapes(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"x": _Payload()}, path)
    with pytest.raises(CheckpointRefused) as err:
        read(path)
    text = str(err.value)
    assert "\x1b" not in text and "\n" not in text
    assert "refused: the file pickles Python objects" in text and "_Payload" in text
    with pytest.raises(CheckpointMissing, match="checkpoint not found"):
        read(tmp_path / "missing.ckpt")


def test_mismatched_weights_name_the_key_and_shapes(tmp_path):
    from cnnlab.checkpoint import CheckpointMismatch, check_state_dict

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4, 2))
    state = {**model.state_dict(), "2.weight": torch.zeros(5, 4)}
    with pytest.raises(CheckpointMismatch, match=r"shape mismatches \(key, file, model\) \[\('2\.weight', \[5, 4\], "
                                                 r"\[2, 4\]\)\]"):
        check_state_dict(model, state, "file.ckpt")


@pytest.mark.parametrize("damage", ["half", "flipped_byte"])
def test_corrupt_npz_given_to_cnnlab_face_is_one_line(tmp_path, capsys, damage):
    import numpy as np

    from cnnlab.cli import main

    path = tmp_path / "people.npz"
    from cnnlab.face.gallery.encodings import Encodings, save_encodings

    vectors = np.random.default_rng(0).normal(size=(50, 128)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    save_encodings(path, Encodings([f"p{i // 5}/{i}.png" for i in range(50)], [f"p{i // 5}" for i in range(50)],
                                   vectors, "0" * 64, "course39"))
    data = bytearray(path.read_bytes())
    if damage == "half":
        data = data[: len(data) // 2]
    else:
        data[bytes(data).index(b"embeddings.npy") + 3000] ^= 0xFF
    path.write_bytes(bytes(data))
    image = tmp_path / "probe.png"
    image.write_bytes(b"")
    assert main(["face", "identify", str(image), "--gallery", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{path}: truncated or corrupt encodings file" in err, err


def test_callbacks_config_group_adds_lightning_callbacks(tmp_path):
    from lightning.pytorch.callbacks import StochasticWeightAveraging

    from cnnlab.tasks.checkpointing import BestCheckpoint, LastCheckpoint
    from cnnlab.tasks.skeleton import build_trainer

    trainer, _, _ = build_trainer(_compose("callbacks=swa"), tmp_path, monitor="val/acc", patience=3)
    kinds = [type(cb) for cb in trainer.callbacks]
    assert StochasticWeightAveraging in kinds
    assert kinds.index(BestCheckpoint) < kinds.index(LastCheckpoint) == len(kinds) - 1  # last.ckpt sees the rest
    with pytest.raises(ValueError, match=r"callbacks\.bad: torch\.nn\.Identity is not a lightning Callback"):
        build_trainer(_compose("+callbacks.bad._target_=torch.nn.Identity"), tmp_path, monitor="val/acc")


def test_seeded_loader_draws_the_same_augmentation_with_or_without_workers():
    from torch.utils.data import Dataset

    from cnnlab.data.seeded import seeded_loader

    class Noisy(Dataset):  # a random "augmentation" of item i, drawn from torch's global generator
        def __len__(self):
            return 12

        def __getitem__(self, i):
            return torch.rand(2) + i

    batches = {}
    for workers in (0, 1):
        torch.manual_seed(0)
        loader = seeded_loader(Noisy(), batch_size=4, shuffle=True, num_workers=workers)
        batches[workers] = [torch.cat(list(loader)) for _ in range(2)]  # two epochs
        after = torch.rand(1)  # what the training process draws next
        batches[workers].append(after)
    assert all(torch.equal(a, b) for a, b in zip(batches[0], batches[1]))
    assert not torch.equal(batches[0][0], batches[0][1]), "epochs draw different augmentation"


def test_best_metrics_come_from_the_checkpoint_callback_with_two_validations_per_epoch(tiny_digits, tmp_path):
    import lightning as L

    from cnnlab.tasks.fit import build
    from cnnlab.tasks.skeleton import fit_and_publish

    cfg = _compose(*TRAIN, "trainer.max_epochs=3", "num_workers=0", "+trainer.val_check_interval=0.5",
                   f"paths.prepared={tiny_digits}")
    L.seed_everything(0, workers=True)
    module, dm = build(cfg)
    class Count(L.Callback):
        validations = 0

        def on_validation_end(self, trainer, pl_module):
            if not trainer.sanity_checking:
                Count.validations += 1

    out = tmp_path / "run"
    metrics = fit_and_publish(cfg, module, dm, out, monitor="val/acc", callbacks=[Count()],
                              summary=lambda m, t, best: {"chosen": best.best_metrics})
    chosen = metrics["chosen"]
    assert Count.validations == 6  # two per epoch
    assert chosen["val/acc"] == metrics["best_score"] and "val/loss" in chosen
    assert chosen["epoch"] == read(out / "best.ckpt")["epoch"]
