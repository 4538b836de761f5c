"""Training the face encoder from a composed config: the pure part of the ``train_encoder`` stage.

The configured identity split decides what the encoder may see: with ``face.train_on=ids`` it
trains on the training people of ``orl_faces_ids``, the validation people choose the checkpoint
(``face.train.monitor``) and the test people stay unseen for ``evaluate_faces``. With
``face.train_on=all`` it trains on every person (images split per person), for the model users get.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from ..io import replace, write_json
from ..tasks.fit import is_launch_rank_zero, trainer_config, warn_unused_speed
from .data import FaceDataModule
from .embedder import load_encoder
from .encoder import FaceEncoderModule

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


def trainer_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """``lightning.Trainer`` kwargs (and ``_target_``) for the encoder: ``cfg.trainer`` through
    :func:`cnnlab.tasks.fit.trainer_config`, with ``face.train.max_epochs``.

    The ``trainer.speed`` block (``trainer=gpu``/``ddp``) is dropped: the P×K face data module
    keeps its images on the host and has no batch augmentation on the device, so those options
    do not apply here (a warning says so); accelerator, precision and strategy do.
    ``use_distributed_sampler`` is off: Lightning cannot shard the P×K batch sampler, so under
    DDP each rank draws its own batches (seeded by rank) and scores the whole validation split.
    """
    warn_unused_speed(cfg, "face encoder training")
    return {**trainer_config(cfg), "max_epochs": cfg.face.train.max_epochs, "use_distributed_sampler": False}


class _ValHistory(L.Callback):
    """Validation metrics of every epoch (``on_train_epoch_end`` runs after that epoch's validation)."""

    def __init__(self):
        self.rows: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        m = trainer.callback_metrics
        self.rows.append({k: float(m[f"val/{k}"]) for k in _VAL_KEYS if f"val/{k}" in m})


def fit_encoder(cfg: DictConfig, callbacks: list[L.Callback] = ()) -> dict[str, Any]:
    """Train, then publish ``best.ckpt``, ``last.ckpt`` and ``metrics.json`` into ``face.paths.run``.

    As in :func:`cnnlab.tasks.fit.fit`, checkpoints go to a hidden ``.<run>.partial`` folder and
    are moved into place only at the end, so an interrupted run leaves nothing complete-looking.

    Under DDP every rank trains; only global rank 0 cleans, publishes and writes files, and the
    other ranks return only ``epochs``.

    Returns:
        The metrics: validation metrics of the selected epoch (``best_val_rank1``, ``best_val_eer``, ...),
        the epoch, the training people, parameter count and wall time.

    Raises:
        RuntimeError: training was interrupted.
    """
    L.seed_everything(cfg.seed, workers=True)
    f = cfg.face
    out = Path(f.paths.run)
    work = out.parent / f".{out.name}.partial"
    if is_launch_rank_zero():
        shutil.rmtree(work, ignore_errors=True)
    module, dm = build(cfg)
    ckpt = ModelCheckpoint(dirpath=work, filename="best", monitor=f.train.monitor, mode=f.train.mode,
                           save_last=True, enable_version_counter=False)
    stop = EarlyStopping(monitor=f.train.monitor, mode=f.train.mode, patience=f.train.patience)
    history = _ValHistory()
    trainer: L.Trainer = instantiate(trainer_kwargs(cfg), logger=False, callbacks=[ckpt, stop, history, *callbacks],
                                     default_root_dir=str(work))
    start = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    if trainer.interrupted:
        raise RuntimeError(f"encoder training interrupted at epoch {trainer.current_epoch}")
    if not trainer.is_global_zero:  # rank 0 alone saved the checkpoints and moves them into place
        return {"epochs": trainer.current_epoch}
    best_epoch = torch.load(work / "best.ckpt", map_location="cpu", weights_only=True)["epoch"]
    metrics = {f"best_val_{k}": v for k, v in history.rows[best_epoch].items()} | {
        "best_epoch": int(best_epoch), "epochs": trainer.current_epoch, "stopped_early": bool(stop.stopped_epoch),
        "train_seconds": round(time.perf_counter() - start, 1), "dataset": f.dataset, "train_on": f.train_on,
        "train_identities": dm.train_identities, "num_params": sum(p.numel() for p in module.embedder.parameters()),
        "trainable_params": sum(p.numel() for p in module.embedder.parameters() if p.requires_grad),
        "init": enc_init if (enc_init := f.encoder.get("init")) else None,
    }
    out.mkdir(parents=True, exist_ok=True)
    for name in ("best.ckpt", "last.ckpt"):
        replace(work / name, out / name)
    write_json(out / "metrics.json", metrics)
    shutil.rmtree(work, ignore_errors=True)
    return metrics
