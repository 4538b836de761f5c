"""The one training skeleton: build a Lightning Trainer from config, train into ``.partial/``, publish.

Every training task (classifier, face encoder, fine-tuning, detectors, segmenters) goes through
:func:`fit_and_publish`. It owns:

* the Trainer, from ``cfg.trainer`` (Lightning's kwargs; cnnlab's ``trainer.speed`` block removed),
  its kwargs checked against ``lightning.Trainer``'s signature so that a bad value names its key;
* checkpointing into a hidden ``<out>/../.<out name>.partial`` folder: ``best.ckpt`` by the
  monitored metric, ``last.ckpt`` after every epoch, both atomic and free of absolute paths
  (:mod:`cnnlab.tasks.checkpointing`), early stopping;
* ``resume=true``: continue from the partial ``last.ckpt`` if there is one (weights, optimiser,
  scheduler, early stopping, best checkpoint and every random generator), else start fresh; a
  partial folder left by a different config is not resumed;
* signals: SIGTERM (SLURM pre-emption, Snakemake) and SIGINT (Ctrl-C) stop training at the next
  batch and raise :class:`Interrupted`; the partial folder is kept;
* the per-epoch log ``history.csv`` and its picture ``learning_curves.png``
  (:class:`cnnlab.tasks.callbacks.History`);
* the publish step: ``best.ckpt``, ``last.ckpt``, ``metrics.json`` (and the history) appear in ``out`` in one
  rename, only when training ended normally, so an interrupted run never leaves a
  complete-looking output;
* rank-0 guards under DDP.

A task supplies its LightningModule and DataModule, the metric to monitor, and optionally a
``summary`` callable that adds task metrics to ``metrics.json``.

Exact resume needs every random draw of an epoch to come from generators the checkpoint
restores. Random augmentation in DataLoader workers draws from the workers' own generators, which
no checkpoint holds, so training loaders come from :mod:`cnnlab.data.seeded` (per-sample seeds
drawn in the main process), as those of ``ImageFolderDataModule``, ``FaceDataModule`` and
fine-tuning do; a new task's DataModule should use it too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from ..checkpoint import CheckpointTruncated, read, verify
from ..io import headline, replace, write_json
from .callbacks import PUBLISHED as _EXTRA_OUTPUTS
from .callbacks import History
from .checkpointing import BestCheckpoint, LastCheckpoint, PortableCheckpointIO, RngState
from .config_check import check_call, check_training_config
from .fit import is_launch_rank_zero, trainer_config
from ..interrupts import Interrupted  # noqa: F401  (raised here; re-exported for callers)

log = logging.getLogger(__name__)

Summary = Callable[[L.LightningModule, L.Trainer, BestCheckpoint], dict[str, Any]]
CONFIG_RECORD = "config.json"
# Keys that may differ between an interrupted run and the run that resumes it (results do not
# depend on them: training loaders seed per sample, see cnnlab.data.seeded).
_RESUME_FREE = ("resume", "threads", "num_workers", "mlflow")


def partial_dir(out: str | Path) -> Path:
    """The hidden folder a run trains into before it is published to ``out``."""
    out = Path(out)
    return out.parent / f".{out.name}.partial"


def _run_config(cfg: DictConfig) -> dict[str, Any]:
    conf = OmegaConf.to_container(cfg, resolve=True)
    return {k: v for k, v in conf.items() if k not in _RESUME_FREE}


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str) for d in _diff(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]


def resume_point(cfg: DictConfig, work: Path) -> Path | None:
    """The partial ``last.ckpt`` to resume from, or None to train from scratch.

    Resumes only with ``resume=true``, when ``last.ckpt`` exists and the partial folder was made
    by the same config (apart from ``resume``, ``threads``, ``num_workers`` and ``mlflow``).

    Raises:
        CheckpointTruncated: the partial ``last.ckpt`` is cut short or damaged (the message says
            to delete the folder to start over).
    """
    last = work / "last.ckpt"
    if not cfg.get("resume"):
        return None
    if not last.is_file():
        log.info("resume=true: no partial checkpoint %s, training from scratch", last)
        return None
    try:
        verify(last, "partial checkpoint")
    except CheckpointTruncated as err:
        raise CheckpointTruncated(f"{err}; delete {work} to train from scratch") from None
    record = work / CONFIG_RECORD
    before = json.loads(record.read_text()) if record.is_file() else None
    changed = _diff(before, _run_config(cfg)) if before is not None else ["(no config record)"]
    if changed:
        log.warning("resume=true: %s was made with another config (%s); training from scratch",
                    work, ", ".join(changed[:5]))
        return None
    log.info("resuming from %s", last)
    return last


def build_trainer(cfg: DictConfig, work: Path, *, monitor: str, mode: str = "max", patience: int | None = None,
                  callbacks: Sequence[L.Callback] = (), trainer_overrides: dict[str, Any] | None = None
                  ) -> tuple[L.Trainer, BestCheckpoint, EarlyStopping | None]:
    """The Trainer of ``cfg.trainer`` (+ overrides) with cnnlab's checkpointing, early stopping and callbacks.

    Raises:
        ValueError: a Trainer kwarg of the wrong type or value (the message names ``trainer.<key>``).
    """
    best = BestCheckpoint(dirpath=work, filename="best", monitor=monitor, mode=mode, save_last=False,
                          enable_version_counter=False)
    stop = EarlyStopping(monitor=monitor, mode=mode, patience=patience) if patience is not None else None
    kwargs = {**trainer_config(cfg), **(trainer_overrides or {})}
    check_call(kwargs, "trainer")
    # Checkpoint callbacks run last, in this order: best.ckpt, then last.ckpt sees its new state.
    # History (history.csv + learning_curves.png, published with the run) is written before last.ckpt.
    cbs = [RngState(), *([stop] if stop else []), *callbacks, *configured_callbacks(cfg), History(work), best,
           LastCheckpoint(work)]
    try:
        trainer = instantiate(kwargs, callbacks=cbs, logger=False, default_root_dir=str(work),
                              plugins=[PortableCheckpointIO()])
    except (TypeError, ValueError, AssertionError) as err:
        raise ValueError(f"trainer: {err}") from None
    return trainer, best, stop


def configured_callbacks(cfg: DictConfig) -> list[L.Callback]:
    """The callbacks of the optional ``callbacks`` config group (``conf/callbacks/``, ``callbacks=swa``).

    Raises:
        ValueError: an entry that is not a Lightning callback, or bad arguments (named).
    """
    nodes = OmegaConf.to_container(cfg.callbacks, resolve=True) if cfg.get("callbacks") else {}
    built = []
    for name, node in nodes.items():
        if not isinstance(node, dict) or "_target_" not in node:
            raise ValueError(f"callbacks.{name}: expected a node with _target_, got {node!r}")
        check_call(node, f"callbacks.{name}")
        callback = instantiate(node)
        if not isinstance(callback, L.Callback):
            raise ValueError(f"callbacks.{name}: {node['_target_']} is not a lightning Callback")
        built.append(callback)
    return built


@contextlib.contextmanager
def _lightning_signals() -> Iterator[None]:
    """While Lightning trains, let its own SIGTERM handler run alone (it stops at the next batch).

    Outside training, the stage's handler turns SIGTERM into an exception at once; inside, that
    would cut a batch in half, so the default disposition is put back for Lightning to replace.
    """
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _fit(trainer: L.Trainer, module: L.LightningModule, data: dict[str, Any], resume_from: Path | None,
         work: Path, quiet_warnings: Sequence[str]) -> None:
    """``trainer.fit``, with an interruption by a signal raised as :class:`Interrupted`."""
    signum = None
    try:
        with warnings.catch_warnings(), _lightning_signals():
            # the partial folder holds config.json (and on resume the checkpoints) by design
            warnings.filterwarnings("ignore", ".*Checkpoint directory .* exists and is not empty.*")
            for pattern in quiet_warnings:
                warnings.filterwarnings("ignore", pattern)
            trainer.fit(module, **data, ckpt_path=resume_from, weights_only=True)
    except SIGTERMException:
        signum = signal.SIGTERM
    except SystemExit:  # Lightning's answer to Ctrl-C: a graceful shutdown, then sys.exit(1)
        if not trainer.interrupted:
            raise
        signum = signal.SIGTERM if trainer.received_sigterm else signal.SIGINT
    except BaseException:
        if not trainer.received_sigterm:  # e.g. a DataLoader worker killed with the process group
            raise
        signum = signal.SIGTERM
    if signum is None and trainer.interrupted:
        signum = signal.SIGINT
    if signum is not None:
        last = work / "last.ckpt"
        kept = (f"kept {last} ({_epochs_done(last)} epoch(s) done)" if last.is_file()
                else f"no epoch had finished, nothing to resume in {work}")
        raise Interrupted(signum, f"training interrupted by {signal.Signals(signum).name} during epoch "
                                  f"{trainer.current_epoch}; {kept}; rerun the same command with resume=true "
                                  f"to continue") from None


def _epochs_done(path: Path) -> int | str:
    """How many epochs a ``last.ckpt`` completes (for messages), or ``"?"``."""
    try:
        return int(read(path, "partial checkpoint")["epoch"]) + 1
    except Exception:  # only for a message
        return "?"


def _publish(work: Path, out: Path, metrics: dict[str, Any]) -> None:
    """Move best/last/metrics into ``out`` in one rename; the partial folder stays valid until then."""
    staging = work / "publish"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for name in ("best.ckpt", "last.ckpt"):
        try:
            os.link(work / name, staging / name)
        except OSError:
            shutil.copy2(work / name, staging / name)
    for name in _EXTRA_OUTPUTS:  # history.csv, learning_curves.png, mlflow_run.json when written
        if (work / name).is_file():
            shutil.copy2(work / name, staging / name)
    head = headline(metrics)   # `dvc metrics show`: numbers only; the rest (names, hashes) in details.json
    write_json(staging / "metrics.json", head)
    if head != metrics:
        write_json(staging / "details.json", metrics)
    out.parent.mkdir(parents=True, exist_ok=True)
    replace(staging, out)
    shutil.rmtree(work, ignore_errors=True)


def fit_and_publish(cfg: DictConfig, module: L.LightningModule, datamodule: L.LightningDataModule,
                    out: str | Path, *, monitor: str, mode: str = "max", patience: int | None = None,
                    callbacks: Sequence[L.Callback] = (), trainer_overrides: dict[str, Any] | None = None,
                    summary: Summary | None = None, quiet_warnings: Sequence[str] = ()) -> dict[str, Any]:
    """Train ``module`` on ``datamodule``, then publish ``best.ckpt``, ``last.ckpt``, ``metrics.json``.

    The caller seeds (``L.seed_everything(cfg.seed, workers=True)``) before it builds the module
    and data, so that weight initialisation is reproducible too.

    Args:
        cfg: the composed config; reads ``resume`` and ``trainer``.
        datamodule: a LightningDataModule, or ``(train_loader, val_loader)``.
        out: the run folder to publish into.
        monitor: the logged metric that picks ``best.ckpt`` (e.g. ``"val/acc"``, ``"val/map_50"``).
        mode: ``"max"`` or ``"min"`` for ``monitor``.
        patience: early-stopping patience in validation rounds; ``None`` disables early stopping.
        callbacks: extra callbacks (e.g. the MLflow metrics callback).
        trainer_overrides: Trainer kwargs that replace ``cfg.trainer``'s (e.g. a task's own
            ``max_epochs``).
        summary: returns task metrics merged into ``metrics.json`` (called on every rank, with
            the best checkpoint callback: ``best_model_score``, ``best_metrics``).
        quiet_warnings: regexes of Lightning warnings that do not apply to this task.

    Returns:
        The metrics: ``best_score`` (of ``monitor``), ``epochs``, ``stopped_early``, ``num_params`` and
        whatever ``summary`` adds. Their numbers are written to ``metrics.json``; when ``summary`` adds
        anything else (names, hashes), all of them also to ``details.json``.

    Raises:
        Interrupted: SIGTERM or SIGINT stopped training; the partial folder is kept.
        CheckpointTruncated: ``resume=true`` found a damaged partial ``last.ckpt``.
        ValueError: a bad ``trainer.*`` value (named).
    """
    check_training_config(cfg)
    out = Path(out)
    work = partial_dir(out)
    resume_from = resume_point(cfg, work)
    trainer, best, stop = build_trainer(cfg, work, monitor=monitor, mode=mode, patience=patience,
                                        callbacks=callbacks, trainer_overrides=trainer_overrides)
    if resume_from is None and is_launch_rank_zero():
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        write_json(work / CONFIG_RECORD, _run_config(cfg))
    if isinstance(datamodule, (tuple, list)):
        train_loader, val_loader = datamodule
        fit_args = {"train_dataloaders": train_loader, "val_dataloaders": val_loader}
    else:
        fit_args = {"datamodule": datamodule}
    _fit(trainer, module, fit_args, resume_from, work, quiet_warnings)
    score = best.best_model_score
    metrics: dict[str, Any] = {
        "best_score": None if score is None else float(score),
        "epochs": trainer.current_epoch,
        "stopped_early": bool(stop is not None and stop.stopped_epoch),
        "num_params": sum(p.numel() for p in module.parameters()),
    }
    if summary is not None:
        metrics.update(summary(module, trainer, best))
    if trainer.is_global_zero:
        _publish(work, out, metrics)
    return metrics
