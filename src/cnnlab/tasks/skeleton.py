"""The one training skeleton: build a Lightning Trainer from config, train into ``.partial/``, publish.

Every training task (classifier, face encoder, fine-tuning, detectors, segmenters) goes through
:func:`fit_and_publish`. It owns:

* the Trainer, from ``cfg.trainer`` (Lightning's kwargs; cnnlab's ``trainer.speed`` block removed);
* checkpointing into a hidden ``<out>/../.<out name>.partial`` folder (``best.ckpt`` by the
  monitored metric, ``last.ckpt``), early stopping, and ``resume=true``;
* the publish step: ``best.ckpt``, ``last.ckpt`` and ``metrics.json`` moved into ``out`` only when
  training ended normally, so an interrupted run never leaves a complete-looking output;
* rank-0 guards under DDP.

A task supplies its LightningModule and DataModule, the metric to monitor, and optionally a
``summary`` callable that adds task metrics to ``metrics.json``.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from omegaconf import DictConfig

from ..io import replace, write_json
from .fit import is_launch_rank_zero, trainer_config

log = logging.getLogger(__name__)

Summary = Callable[[L.LightningModule, L.Trainer, ModelCheckpoint], dict[str, Any]]


def partial_dir(out: str | Path) -> Path:
    """The hidden folder a run trains into before it is published to ``out``."""
    out = Path(out)
    return out.parent / f".{out.name}.partial"


def fit_and_publish(cfg: DictConfig, module: L.LightningModule, datamodule: L.LightningDataModule,
                    out: str | Path, *, monitor: str, mode: str = "max", patience: int | None = None,
                    callbacks: Sequence[L.Callback] = (), trainer_overrides: dict[str, Any] | None = None,
                    summary: Summary | None = None, quiet_warnings: Sequence[str] = ()) -> dict[str, Any]:
    """Train ``module`` on ``datamodule``, then publish ``best.ckpt``, ``last.ckpt``, ``metrics.json``.

    The caller seeds (``L.seed_everything(cfg.seed, workers=True)``) before it builds the module
    and data, so that weight initialisation is reproducible too.

    Args:
        cfg: the composed config; reads ``resume`` and ``trainer``.
        out: the run folder to publish into.
        monitor: the logged metric that picks ``best.ckpt`` (e.g. ``"val/acc"``, ``"val/map_50"``).
        mode: ``"max"`` or ``"min"`` for ``monitor``.
        patience: early-stopping patience in validation rounds; ``None`` disables early stopping.
        callbacks: extra callbacks (e.g. the MLflow metrics callback).
        trainer_overrides: Trainer kwargs that replace ``cfg.trainer``'s (e.g. a task's own
            ``max_epochs``).
        summary: returns task metrics merged into ``metrics.json`` (called on every rank).
        quiet_warnings: regexes of Lightning warnings that do not apply to this task.

    Returns:
        The metrics written to ``metrics.json`` (numbers only, so they log as MLflow metrics):
        ``best_score`` (of ``monitor``), ``epochs``, ``stopped_early``, ``num_params`` and whatever ``summary`` adds.

    Raises:
        RuntimeError: training was interrupted (Ctrl-C, SIGTERM); the partial folder is kept.
    """
    out = Path(out)
    work = partial_dir(out)
    resume_from = work / "last.ckpt" if cfg.get("resume") and (work / "last.ckpt").is_file() else None
    if cfg.get("resume") and resume_from is None:
        log.warning("resume=true but %s does not exist: training from scratch", work / "last.ckpt")
    if resume_from is None and is_launch_rank_zero():
        shutil.rmtree(work, ignore_errors=True)
    ckpt = ModelCheckpoint(dirpath=work, filename="best", monitor=monitor, mode=mode, save_last=True,
                           enable_version_counter=False)
    cbs: list[L.Callback] = [ckpt]
    stop = None
    if patience is not None:
        stop = EarlyStopping(monitor=monitor, mode=mode, patience=patience)
        cbs.append(stop)
    kwargs = {**trainer_config(cfg), **(trainer_overrides or {})}
    trainer: L.Trainer = instantiate(kwargs, callbacks=[*cbs, *callbacks], logger=False, default_root_dir=str(work))
    with warnings.catch_warnings():
        for pattern in quiet_warnings:
            warnings.filterwarnings("ignore", pattern)
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    if trainer.interrupted:
        raise RuntimeError(f"training interrupted at epoch {trainer.current_epoch}; rerun with resume=true "
                           f"to continue from {work / 'last.ckpt'}")
    score = ckpt.best_model_score
    metrics: dict[str, Any] = {
        "best_score": None if score is None else float(score),
        "epochs": trainer.current_epoch,
        "stopped_early": bool(stop is not None and stop.stopped_epoch),
        "num_params": sum(p.numel() for p in module.parameters()),
    }
    if summary is not None:
        metrics.update(summary(module, trainer, ckpt))
    if not trainer.is_global_zero:
        return metrics
    out.mkdir(parents=True, exist_ok=True)
    for name in ("best.ckpt", "last.ckpt"):
        replace(work / name, out / name)
    write_json(out / "metrics.json", metrics)
    shutil.rmtree(work, ignore_errors=True)
    return metrics
