"""Checkpoints that make ``resume=true`` continue the run it would have been, and that two clones agree on.

The training skeleton (:mod:`cnnlab.tasks.skeleton`) installs all four:

* :class:`PortableCheckpointIO` writes every checkpoint atomically (a temporary sibling, then a
  rename) with the paths Lightning keeps in callback state (``ModelCheckpoint``'s ``dirpath``,
  ``best_model_path``, ...) made relative to the checkpoint's own folder, so identical training
  in two clones gives byte-identical files. It turns them back into paths under the folder the
  checkpoint is read from, and reads through :func:`cnnlab.checkpoint.read` (``weights_only``).
* :class:`BestCheckpoint` is Lightning's ``ModelCheckpoint`` for ``best.ckpt`` that also keeps
  every validation metric of the selected epoch (:attr:`BestCheckpoint.best_metrics`).
* :class:`LastCheckpoint` writes ``last.ckpt`` at the end of *every* epoch, after validation,
  early stopping and ``best.ckpt`` have updated their state. (Lightning's ``save_last`` writes
  it only when a top-k checkpoint is written too.)
* :class:`RngState` stores every random generator of the process (torch, CUDA, numpy, Python)
  in each checkpoint and restores them on resume, so the next epoch's shuffling, DataLoader
  worker seeds, augmentation and dropout draw what the uninterrupted run drew.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.trainer.states import TrainerFn

from ..checkpoint import read

log = logging.getLogger(__name__)

_HERE = "."  # what an absolute path of the checkpoint's own folder is stored as


def _relative(value: Any, folder: str) -> Any:
    """``value`` with every string that is a path inside ``folder`` made relative to it (recursively)."""
    if isinstance(value, str):
        if value == folder:
            return _HERE
        if value.startswith(folder + os.sep):
            return os.path.relpath(value, folder)
        return value
    if isinstance(value, dict):
        return {_relative(k, folder): _relative(v, folder) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_relative(v, folder) for v in value)
    return value


def _absolute(value: Any, folder: str, key: str | None = None) -> Any:
    """Undo :func:`_relative` for the path-valued keys of ModelCheckpoint's state."""
    if isinstance(value, dict):
        return {(_absolute(k, folder, "path") if key == "best_k_models" else k): _absolute(v, folder, k)
                for k, v in value.items()}
    if isinstance(value, str) and key is not None and (key == "dirpath" or key.endswith("path")):
        if value == _HERE:
            return folder
        if value and not os.path.isabs(value) and "://" not in value:
            return os.path.join(folder, value)
    return value


class PortableCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint I/O, atomic and without absolute paths of this machine."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        folder = os.path.realpath(os.path.dirname(os.fspath(path)))
        if "callbacks" in checkpoint:
            checkpoint = {**checkpoint, "callbacks": _relative(checkpoint["callbacks"], folder)}
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)

    def load_checkpoint(self, path, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        checkpoint = read(path, "checkpoint to resume from")
        if "callbacks" in checkpoint:
            folder = os.path.realpath(os.path.dirname(os.fspath(path)))
            checkpoint["callbacks"] = {name: _absolute(state, folder) for name, state in checkpoint["callbacks"].items()}
        return checkpoint


class BestCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` of the best epoch by ``monitor`` that remembers that epoch's validation metrics.

    :attr:`best_metrics` holds every ``val/*`` metric and the ``epoch`` of the checkpoint it
    selected, whatever the number of validations per epoch. It travels in the checkpoint, so a
    resumed run still knows them.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.best_metrics: dict[str, float] = {}

    def _track(self, trainer: L.Trainer, hook) -> None:
        before = self.best_model_score
        hook()
        if self.best_model_score is not None and self.best_model_score is not before:
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items()
                       if k.startswith("val/") and isinstance(v, torch.Tensor) and v.numel() == 1}
            self.best_metrics = {**metrics, "epoch": int(trainer.current_epoch)}

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._track(trainer, lambda: super(BestCheckpoint, self).on_validation_end(trainer, pl_module))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._track(trainer, lambda: super(BestCheckpoint, self).on_train_epoch_end(trainer, pl_module))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "best_metrics": dict(self.best_metrics)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.best_metrics = dict(state_dict.get("best_metrics", {}))


class LastCheckpoint(Checkpoint):
    """Write ``<dirpath>/last.ckpt`` at the end of every training epoch.

    Written in ``on_train_epoch_end``, where Lightning calls early stopping and checkpoint
    callbacks last, checkpoints in the order given: placed after the best-checkpoint callback,
    ``last.ckpt`` holds the state that this epoch's validation left in both. Its ``epoch`` is
    Lightning's 0-based index of the epoch it completes. It also records whether early stopping
    asked to stop, so a run killed after its final epoch does not train another one on resume.
    """

    def __init__(self, dirpath: str | Path, filename: str = "last.ckpt"):
        self.path = Path(dirpath) / filename
        self._saved_step = -1
        self._trainer: L.Trainer | None = None
        self._stop_on_resume = False

    @property
    def state_key(self) -> str:
        return f"LastCheckpoint{{'filename': '{self.path.name}'}}"

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def _save(self, trainer: L.Trainer) -> None:
        if (trainer.sanity_checking or trainer.fast_dev_run or trainer.state.fn != TrainerFn.FITTING
                or self._saved_step == trainer.global_step):
            return
        trainer.save_checkpoint(self.path, weights_only=False)
        self._saved_step = trainer.global_step

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"should_stop": bool(self._trainer is not None and self._trainer.should_stop)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._stop_on_resume = bool(state_dict.get("should_stop"))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._stop_on_resume:
            log.info("the checkpoint resumed from had already stopped early: no further epochs")
            trainer.should_stop = True
            self._stop_on_resume = False


def collect_rng_states() -> dict[str, Any]:
    """Every global random generator's state, as tensors and plain Python types (``weights_only``-safe)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    states: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate(),
                              "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`collect_rng_states` returned."""
    torch.set_rng_state(states["torch"])
    random.setstate(_tuples(states["python"]))
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


class RngState(L.Callback):
    """Save the process's random generators in every checkpoint; restore them when training resumes.

    Saved when the checkpoint is written (the end of an epoch, after its validation), restored
    when Lightning restores callbacks, before the next epoch's DataLoader iterator draws its
    shuffling order and worker seeds. Exact for one process; under DDP every rank would get
    rank 0's generators, so they are not restored there (a warning says so).
    """

    def __init__(self):
        self._trainer: L.Trainer | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        return collect_rng_states()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self._trainer is not None and self._trainer.world_size > 1:
            log.warning("resume under DDP: random generators are not restored (each rank keeps its own seed)")
            return
        set_rng_states(state_dict)
