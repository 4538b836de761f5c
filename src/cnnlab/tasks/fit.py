"""Training a classifier from a composed config: the pure part of the ``train`` stage.

The ``trainer`` config group is ``lightning.Trainer``'s kwargs plus one block of cnnlab's own,
``trainer.speed`` (see ``conf/trainer/gpu.yaml``), which :func:`trainer_config` removes before
the Trainer is built: ``channels_last``, ``compile``, ``data_on_device`` and ``gpu_augment``.
Without the block (``trainer=cpu``) training runs exactly as it always has.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ..augment.gpu import BatchAugment
from ..data.datamodule import ImageFolderDataModule
from ..models import default_input_size, get_entry
from .classifier import Classifier

log = logging.getLogger(__name__)


def input_hw(cfg: DictConfig) -> tuple[int, int]:
    """(H, W) to feed the model: ``data.image_size`` if set, else the architecture's own size."""
    native = default_input_size(cfg.model.name)
    if get_entry(cfg.model.name).default_cfg.get("task") == "segmentation":
        raise ValueError(f"model={cfg.model.name} is a segmentation model: train it with "
                         f"`python -m cnnlab.stages.train_segmenter model={cfg.model.name}`")
    if len(native) != 3:
        raise ValueError(f"model={cfg.model.name} takes {len(native) - 1}-D inputs {tuple(native)}, "
                         f"not images: it cannot train on the image data set {cfg.data.name!r}")
    size = cfg.data.image_size
    if size is None:
        return tuple(native[-2:])
    return (size, size) if isinstance(size, int) else tuple(size)


def model_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """The builder kwargs of ``cfg.model``: everything but ``name`` (the registry name).

    ``conf/model/<name>.yaml`` ↔ registry name ↔ the checkpoint's ``arch`` and ``model_kwargs``
    is one naming chain (``tests/test_naming_chain.py``): the file's ``name`` is its stem and a
    registered model, and its other keys are that builder's kwargs, stored as they are.
    """
    kw = OmegaConf.to_container(cfg.model, resolve=True)
    return {k: v for k, v in kw.items() if k != "name"}


def speed_options(cfg: DictConfig) -> dict[str, Any]:
    """``cfg.trainer.speed`` with every option present (absent ones off)."""
    speed = cfg.trainer.get("speed")
    speed = OmegaConf.to_container(speed, resolve=True) if speed is not None else {}
    unknown = set(speed) - {"channels_last", "compile", "data_on_device", "gpu_augment"}
    if unknown:
        raise KeyError(f"trainer.speed: unknown option(s) {sorted(unknown)}")
    return {"channels_last": False, "compile": False, "data_on_device": False, "gpu_augment": None, **speed}


def warn_unused_speed(cfg: DictConfig, stage: str, applied: tuple[str, ...] = ()) -> list[str]:
    """Log one warning naming the ``trainer.speed`` options that are set but that ``stage`` does not apply.

    The ``train`` stage applies them all; the others keep their data on the host and apply at
    most the options named in ``applied`` (e.g. ``channels_last`` for a convolutional segmenter).

    Returns:
        The names of the ignored options (empty when none is set).
    """
    ignored = sorted(k for k, v in speed_options(cfg).items() if v and k not in applied)
    if ignored:
        log.warning("trainer.speed options %s do not apply to %s: ignored", ignored, stage)
    return ignored


def trainer_config(cfg: DictConfig) -> dict[str, Any]:
    """``cfg.trainer`` resolved, without cnnlab's ``speed`` block: ``lightning.Trainer``'s kwargs
    (and ``_target_``)."""
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer.pop("speed", None)
    return trainer


def is_launch_rank_zero() -> bool:
    """Whether this process is global rank 0, from what its launcher put in the environment.

    Known before any Trainer exists: torchrun sets ``RANK``, ``srun`` sets ``SLURM_PROCID``, and
    Lightning's own launcher starts ranks > 0 by re-running the command with ``LOCAL_RANK`` and
    ``NODE_RANK`` set (inheriting the others, e.g. inside an interactive SLURM job). Rank 0 is the
    process for which every one that is set is 0. The others train but neither publish outputs
    nor track runs.
    """
    return all(int(os.environ.get(key, 0)) == 0 for key in ("RANK", "SLURM_PROCID", "NODE_RANK", "LOCAL_RANK"))


def build(cfg: DictConfig) -> tuple[Classifier, ImageFolderDataModule]:
    """Build the datamodule from the prepared folder and the module around the configured model,
    with the ``trainer.speed`` options applied."""
    speed = speed_options(cfg)
    on_device = bool(speed["data_on_device"])
    augment = BatchAugment(**speed["gpu_augment"]) if speed["gpu_augment"] else None
    if on_device:
        log.info("data on device: the CPU augmentation policy (augment=...) is not applied; "
                 "batch augmentation on the device: %s", augment)
    dm = ImageFolderDataModule(cfg.paths.prepared, input_hw(cfg), batch_size=cfg.batch_size,
                               num_workers=cfg.num_workers,
                               train_transform=None if on_device else instantiate(cfg.augment),
                               on_device=on_device, batch_augment=augment, channels_last=speed["channels_last"])
    module = Classifier(
        arch=cfg.model.name, classes=dm.classes, in_chans=dm.channels, input_size=list(dm.image_size),
        normalization=dm.normalization, model_kwargs=model_kwargs(cfg),
        optim=OmegaConf.to_container(cfg.optim, resolve=True),
        scheduler=OmegaConf.to_container(cfg.scheduler, resolve=True) if cfg.get("scheduler") else None,
        init=cfg.get("init", "default"),
    )
    if speed["channels_last"]:
        module.model.to(memory_format=torch.channels_last)
    if speed["compile"]:
        module.model.compile()  # in place: state_dict keys (and so checkpoints) stay unprefixed
    return module, dm


def fit(cfg: DictConfig, callbacks: list[L.Callback] = ()) -> dict[str, Any]:
    """Train, then publish ``best.ckpt``, ``last.ckpt`` and ``metrics.json`` into ``cfg.paths.run``.

    Goes through the one training skeleton (:func:`cnnlab.tasks.skeleton.fit_and_publish`):
    checkpoints are written to a hidden ``.<seed dir>.partial`` folder and published only when
    training ends; ``resume=true`` continues from that folder's ``last.ckpt``. Returns the metrics.

    Raises:
        cnnlab.tasks.skeleton.Interrupted: SIGTERM or Ctrl-C stopped training; the partial folder is kept.
    """
    from .skeleton import fit_and_publish

    L.seed_everything(cfg.seed, workers=True)
    module, dm = build(cfg)
    es = cfg.early_stopping
    quiet = [".*does not have many workers.*"] if dm.on_device else []  # index batches need no workers
    metrics = fit_and_publish(cfg, module, dm, cfg.paths.run, monitor=es.monitor, mode=es.mode,
                              patience=es.patience, callbacks=callbacks, quiet_warnings=quiet,
                              summary=lambda m, t, ckpt: {"best_val_acc": float(ckpt.best_model_score)})
    return metrics
