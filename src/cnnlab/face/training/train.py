"""Training the face encoder from a composed config: the pure part of the ``train_encoder`` stage.

The configured identity split decides what the encoder may see: with ``face.train_on=ids`` it
trains on the training people of ``orl_faces_ids``, the validation people choose the checkpoint
(``face.train.monitor``) and the test people stay unseen for ``evaluate_faces``. With
``face.train_on=all`` it trains on every person (images split per person), for the model users get.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ...tasks.fit import trainer_config, warn_unused_speed
from .data import FaceDataModule
from ..models.embedder import load_encoder
from .module import FaceEncoderModule

log = logging.getLogger(__name__)

_VAL_KEYS = ("rank1", "eer", "auc", "loss")


def build(cfg: DictConfig) -> tuple[FaceEncoderModule, FaceDataModule]:
    """The P×K datamodule over ``face.paths.prepared`` and the encoder module of ``face.encoder``."""
    f = cfg.face
    enc = OmegaConf.to_container(f.encoder, resolve=True)
    init = enc.get("init")
    # a pretrained encoder brings its own input statistics; one trained from scratch uses the data's
    normalization = load_encoder(init)[1]["normalization"] if init else None
    dm = FaceDataModule(f.paths.prepared, tuple(f.encoder.input_size), p=f.train.p, k=f.train.k,
                        batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                        train_transform=instantiate(f.augment), seed=cfg.seed,
                        batches_per_epoch=f.train.batches_per_epoch, normalization=normalization)
    module = FaceEncoderModule(
        arch=enc["arch"], in_chans=dm.channels, input_size=list(dm.image_size), normalization=dm.normalization,
        model_kwargs=enc["model_kwargs"], embedding_dim=enc["embedding_dim"], objective=enc["objective"],
        miner=enc["miner"], margin=enc["margin"], pair_head=enc["pair_head"], identities=dm.train_identities,
        optim=OmegaConf.to_container(f.optim, resolve=True),
        scheduler=OmegaConf.to_container(f.scheduler, resolve=True) if f.get("scheduler") else None,
        init=init, strategy=enc.get("strategy", "full"), n_blocks=enc.get("n_blocks", 1),
    )
    return module, dm


def trainer_overrides(cfg: DictConfig) -> dict[str, Any]:
    """The encoder's own Trainer kwargs, over ``cfg.trainer``: ``face.train.max_epochs``, and no
    distributed sampler.

    The ``trainer.speed`` block (``trainer=gpu``/``ddp``) does not apply: the P×K face data module
    keeps its images on the host and has no batch augmentation on the device (a warning says so);
    accelerator, precision and strategy do. ``use_distributed_sampler`` is off: Lightning cannot
    shard the P×K batch sampler, so under DDP each rank draws its own batches (seeded by rank)
    and scores the whole validation split.
    """
    warn_unused_speed(cfg, "face encoder training")
    return {"max_epochs": cfg.face.train.max_epochs, "use_distributed_sampler": False}


def trainer_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """``lightning.Trainer`` kwargs (and ``_target_``) for the encoder: ``cfg.trainer`` through
    :func:`cnnlab.tasks.fit.trainer_config`, with :func:`trainer_overrides` applied."""
    return {**trainer_config(cfg), **trainer_overrides(cfg)}


def fit_encoder(cfg: DictConfig, callbacks: list[L.Callback] = ()) -> dict[str, Any]:
    """Train, then publish ``best.ckpt``, ``last.ckpt`` and ``metrics.json`` into ``face.paths.run``.

    Goes through the one training skeleton (:func:`cnnlab.tasks.skeleton.fit_and_publish`):
    a hidden ``.<run>.partial`` folder, ``resume=true``, signals and the publish step. The
    validation metrics of the selected checkpoint come from the checkpoint callback itself
    (:attr:`~cnnlab.tasks.checkpointing.BestCheckpoint.best_metrics`), whatever the number of
    validations per epoch.

    Returns:
        The metrics: validation metrics of the selected checkpoint (``best_val_rank1``,
        ``best_val_eer``, ...), its epoch, the training people, parameter count and wall time.

    Raises:
        cnnlab.tasks.skeleton.Interrupted: a signal stopped training; the partial folder is kept.
    """
    from ...tasks.skeleton import fit_and_publish

    L.seed_everything(cfg.seed, workers=True)
    f = cfg.face
    module, dm = build(cfg)
    start = time.perf_counter()

    def summary(m: FaceEncoderModule, trainer: L.Trainer, best) -> dict[str, Any]:
        chosen = best.best_metrics
        return {f"best_val_{k}": chosen[f"val/{k}"] for k in _VAL_KEYS if f"val/{k}" in chosen} | {
            "best_epoch": int(chosen["epoch"]) if "epoch" in chosen else None,
            "train_seconds": round(time.perf_counter() - start, 1), "dataset": f.dataset, "train_on": f.train_on,
            "train_identities": dm.train_identities, "num_params": sum(p.numel() for p in m.embedder.parameters()),
            "trainable_params": sum(p.numel() for p in m.embedder.parameters() if p.requires_grad),
            "init": enc_init if (enc_init := f.encoder.get("init")) else None,
        }

    return fit_and_publish(cfg, module, dm, f.paths.run, monitor=f.train.monitor, mode=f.train.mode,
                           patience=f.train.patience, callbacks=callbacks, trainer_overrides=trainer_overrides(cfg),
                           summary=summary)
