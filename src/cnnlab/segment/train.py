"""Training a segmenter from a composed ``conf/segment.yaml`` config: the pure part of ``train_segmenter``."""

from __future__ import annotations

import logging
from typing import Any, Sequence

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from ..models import default_input_size
from .data import SegmentationDataModule, class_weights
from .module import Segmenter

log = logging.getLogger(__name__)


def model_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """The builder kwargs of ``cfg.model``: everything but ``name``, the registry name (the naming
    chain of ``tasks.fit.model_kwargs``, kept here so that the segmenter's stages do not import the
    classifier's training code)."""
    kw = OmegaConf.to_container(cfg.model, resolve=True)
    return {k: v for k, v in kw.items() if k != "name"}


def train_size(cfg: DictConfig) -> list[int]:
    """(H, W) of training: ``segmenter.size`` if set, else the model's registered input size."""
    size = cfg.segmenter.size
    if size is None:
        return list(default_input_size(cfg.model.name)[-2:])
    size = [size, size] if isinstance(size, int) else list(size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"segmenter.size must be an int or [H, W], got {size}")
    return size


def build(cfg: DictConfig) -> tuple[Segmenter, SegmentationDataModule]:
    """The DataModule of ``cfg.paths.prepared`` and the module around ``cfg.model``."""
    seg = cfg.segmenter
    augment = OmegaConf.to_container(seg.augment, resolve=True) if seg.augment else None
    if augment is not None:
        augment["flip"] = bool(augment.get("flip", True) and cfg.data.get("mirror", True))
    dm = SegmentationDataModule(cfg.paths.prepared, train_size(cfg), batch_size=seg.batch_size,
                                num_workers=cfg.num_workers, augment=augment)
    weights = class_weights(dm.train, len(dm.classes)) if seg.loss == "weighted_ce" else None
    if weights is not None:
        log.info("class weights (median frequency): %s", dict(zip(dm.classes, weights)))
    module = Segmenter(cfg.model.name, dm.classes, in_chans=3, image_size=list(dm.size),
                       model_kwargs=model_kwargs(cfg), loss=seg.loss, class_weights=weights,
                       optim=OmegaConf.to_container(cfg.optim, resolve=True),
                       scheduler=OmegaConf.to_container(cfg.scheduler, resolve=True) if cfg.get("scheduler") else None)
    return module, dm


def fit(cfg: DictConfig, callbacks: Sequence[L.Callback] = ()) -> dict[str, Any]:
    """Train, then publish ``best.ckpt``, ``last.ckpt`` and ``metrics.json`` into ``cfg.paths.run``.

    Goes through :func:`cnnlab.tasks.skeleton.fit_and_publish`; ``best.ckpt`` has the best
    validation mIoU. Returns the metrics.
    """
    from ..tasks.skeleton import fit_and_publish
    from .masks import ensure_prepared

    from ..tasks.fit import speed_options, warn_unused_speed

    ensure_prepared(cfg)
    # masks go through host DataLoader workers (paired augmentation); only the memory format applies
    warn_unused_speed(cfg, "segmenter training", applied=("channels_last",))
    L.seed_everything(cfg.seed, workers=True)
    module, dm = build(cfg)
    if speed_options(cfg)["channels_last"]:
        module.model.to(memory_format=torch.channels_last)
    return fit_and_publish(cfg, module, dm, cfg.paths.run, monitor="val/miou", mode="max",
                           patience=cfg.segmenter.patience, callbacks=callbacks,
                           quiet_warnings=[".*does not have many workers.*"],
                           summary=lambda m, t, ckpt: {"best_val_miou": float(ckpt.best_model_score or 0.0)})
