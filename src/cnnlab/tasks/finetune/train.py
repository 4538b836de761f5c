"""Fine-tuning's run: prepare source and data, freeze, train through the skeleton.

Transfer learning: take a trained network, give it a new softmax, train some of it on few images.

**Source** (``finetune.source``): a cnnlab classifier checkpoint (architecture, classes, input
size and normalisation travel in it), or a torchvision-format weight file on disk for the
configured ``model`` (keys renamed by the family's ``tv_remap``; ImageNet normalisation). Both are
read with ``weights_only=True``, so a file that pickles arbitrary objects is refused.
``strategy=scratch`` has no source: the same architecture, randomly initialised and trained on
the same images, is the baseline every strategy is compared with.

**Blocks and freezing** are :mod:`cnnlab.models.freezing`'s: "the last N blocks" is defined once
for every family, and a frozen block (no gradients, eval mode, its BN statistics kept) is a fixed
function, which is what makes the cached features exact. The new head always trains.

**Strategies** (n = trunk blocks that train, counted from the top):

- ``head``: n = 0. The frozen features of the training and validation images are computed once,
  cached to disk (keyed by a hash of the source file, the architecture, the data set and the
  image list), and the head trains on the cached vectors, as the course suggests. There is no
  augmentation here: a cached vector is the feature of one fixed image.
- ``partial``: n = ``finetune.n_blocks``.
- ``full``: every block.
- ``gradual``: n = ``finetune.n_blocks`` at first, then one more block every
  ``finetune.unfreeze_every`` epochs: the course's "unfreeze from the back, gradually".
- ``scratch``: a fresh network, every block trains.

The target's training split is cut to ``finetune.shots`` seeded-random images per class; its
validation split (early stopping) and test split (``test_acc``) stay whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch
import torch.nn as nn
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ...checkpoint import read
from ...data.datamodule import ImageFolderDataModule
from ...data.prepared_split import read_prepared
from ...evaluate.classification import predict
from ...models.freezing import Block, set_trainable, trunk_blocks
from ..checkpointing import BestCheckpoint
from ..classifier import Classifier
from ..fit import warn_unused_speed
from ..skeleton import build_trainer, fit_and_publish
from .cached import CachedHead, cached_features, dataset_sha256
from .data import loader, target_data
from .sources import Source, load_source
from .strategies import FreezeSchedule, replace_head, schedule_for


def save_classifier(module: Classifier, path: str | Path, epoch: int = 0, global_step: int = 0) -> Path:
    """Write a weights-and-metadata checkpoint that ``load_checkpoint`` and ``Classifier.load_from_checkpoint`` read."""
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams), "epoch": epoch,
                "global_step": global_step, "pytorch-lightning_version": L.__version__}, path)
    return Path(path)


def _check_one_device(trainer: L.Trainer) -> None:
    if trainer.world_size > 1:  # a few hundred images: one device is plenty, and one process publishes
        raise ValueError(f"fine-tuning runs on one device, but the trainer config asks for {trainer.world_size} "
                         f"processes; use trainer=cpu or trainer=gpu")


class _OneDevice(L.Callback):
    """Fine-tuning runs on one device (checked when the skeleton's Trainer sets up)."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        _check_one_device(trainer)


def _trainer(cfg: DictConfig, work: Path, callbacks: Sequence[L.Callback]) -> tuple[L.Trainer, BestCheckpoint]:
    """The Trainer fine-tuning trains with (the skeleton's, from ``cfg.trainer`` and ``early_stopping``)."""
    es = cfg.early_stopping
    warn_unused_speed(cfg, "fine-tuning")  # a few hundred images through host DataLoaders
    trainer, best, _ = build_trainer(cfg, Path(work), monitor=es.monitor, mode=es.mode, patience=es.patience,
                                     callbacks=[_OneDevice(), *callbacks])
    _check_one_device(trainer)
    return trainer, best


def _fit(cfg: DictConfig, trainee: L.LightningModule, module: Classifier, loaders: tuple[DataLoader, DataLoader],
         out: Path, callbacks: Sequence[L.Callback], summary) -> dict[str, Any]:
    """Train through the skeleton into ``out``; load the selected epoch's weights into ``module``."""
    es = cfg.early_stopping
    warn_unused_speed(cfg, "fine-tuning")  # a few hundred images through host DataLoaders

    def _summary(m: L.LightningModule, trainer: L.Trainer, best: BestCheckpoint) -> dict[str, Any]:
        module.load_state_dict(read(best.best_model_path, "best checkpoint")["state_dict"])
        return {"best_val_acc": float(best.best_model_score), **(summary(trainer) if summary else {})}

    return fit_and_publish(cfg, trainee, loaders, out, monitor=es.monitor, mode=es.mode, patience=es.patience,
                           callbacks=[_OneDevice(), *callbacks], summary=_summary)


def fit_cached_head(cfg: DictConfig, module: Classifier, dm: ImageFolderDataModule, key: dict[str, Any],
                    out: Path, callbacks: Sequence[L.Callback] = (), summary=None) -> dict[str, Any]:
    """Train ``module.model.head`` on cached frozen features, publishing into ``out``.

    The selected epoch's head is loaded into ``module``. Returns the published metrics
    (``best_val_acc``, ``epochs``, ... and what ``summary(trainer)`` adds).
    """
    model = module.model
    data = {s: cached_features(model, dm.split(s), {**key, "split": s, "paths": dm.split(s).paths},
                               cfg.finetune.cache_dir) for s in ("train", "val")}
    head = CachedHead(model.head, dm.num_classes, module.hparams.optim, module.hparams.scheduler, full=module)
    head.train()  # extract_features left the model, head included, in eval mode
    loaders = (loader(TensorDataset(*data["train"]), cfg.batch_size, True, cfg.seed),
               loader(TensorDataset(*data["val"]), cfg.batch_size, False, cfg.seed))
    return _fit(cfg, head, module, loaders, Path(out), callbacks, summary)


def fit_through(cfg: DictConfig, module: Classifier, dm: ImageFolderDataModule, schedule: FreezeSchedule,
                out: Path, callbacks: Sequence[L.Callback] = (), summary=None) -> dict[str, Any]:
    """Train images through the model, with ``schedule`` deciding which blocks train each epoch.

    Publishes into ``out`` and loads the selected epoch's weights into ``module``; returns the metrics.
    """
    module.train()
    loaders = (loader(dm.split("train"), cfg.batch_size, True, cfg.seed, cfg.num_workers),
               loader(dm.split("val"), cfg.batch_size, False, cfg.seed, cfg.num_workers))
    return _fit(cfg, module, module, loaders, Path(out), [schedule, *callbacks], summary)


def accuracy(model: nn.Module, ds: Dataset, batch_size: int = 256) -> float:
    probs, y = predict(model.eval(), DataLoader(ds, batch_size=batch_size))
    return float((probs.argmax(1) == y).float().mean())


def prepare(cfg: DictConfig) -> tuple[Classifier, ImageFolderDataModule, Source, list[Block], tuple[int, int | None]]:
    """Load the source, the few-shot target data, replace the head and freeze as the strategy says."""
    ft = cfg.finetune
    meta, _ = read_prepared(cfg.paths.prepared)
    src = load_source(cfg, meta["channels"], len(meta["classes"]))
    dm = target_data(cfg, src, augment=ft.strategy != "head")  # cached features cannot be augmented
    head_params = (list(src.model.get_classifier().parameters()) if ft.strategy == "scratch"
                   else replace_head(src.model, dm.num_classes))
    blocks = trunk_blocks(src.model, head_params)
    start, every = schedule_for(ft.strategy, ft.get("n_blocks"), ft.get("unfreeze_every"), blocks)
    set_trainable(blocks, start)
    module = Classifier(arch=src.arch, classes=dm.classes, in_chans=dm.channels, input_size=list(src.input_size),
                        normalization=dm.normalization, model_kwargs=src.model_kwargs,
                        optim=OmegaConf.to_container(cfg.optim, resolve=True),
                        scheduler=OmegaConf.to_container(cfg.scheduler, resolve=True) if cfg.get("scheduler") else None)
    module.model = src.model
    return module, dm, src, blocks, (start, every)


def finetune(cfg: DictConfig, callbacks: Sequence[L.Callback] = ()) -> dict[str, Any]:
    """Fine-tune as ``cfg.finetune`` says; publish ``best.ckpt``, ``last.ckpt`` and ``metrics.json`` in ``finetune.out``.

    Goes through the one training skeleton (:func:`cnnlab.tasks.skeleton.fit_and_publish`): the
    output folder appears only when everything succeeded, and ``resume=true`` continues an
    interrupted run. ``best.ckpt`` is a classifier checkpoint of the selected epoch (for
    ``head``, the frozen trunk with the trained head). Returns the metrics.
    """
    L.seed_everything(cfg.seed, workers=True)
    ft = cfg.finetune
    module, dm, src, blocks, (start, every) = prepare(cfg)
    trainable = sum(p.numel() for p in module.model.parameters() if p.requires_grad)

    def summary(trainer: L.Trainer) -> dict[str, Any]:
        return {
            "strategy": ft.strategy, "shots": ft.shots, "source": src.path, "source_sha256": src.sha256,
            "test_acc": accuracy(module.model, dm.split("test")), "n_train": len(dm.split("train")),
            "blocks": len(blocks), "trainable_blocks_at_start": start, "trainable_params_at_start": trainable,
            "num_params": sum(p.numel() for p in module.model.parameters()),
        }

    if ft.strategy == "head":
        key = {"source": src.sha256, "arch": src.arch, "model_kwargs": src.model_kwargs,
               "input_size": src.input_size, "normalization": dm.normalization,
               "data": dataset_sha256(cfg.paths.prepared)}
        return fit_cached_head(cfg, module, dm, key, Path(ft.out), callbacks, summary)
    return fit_through(cfg, module, dm, FreezeSchedule(blocks, start, every), Path(ft.out), callbacks, summary)
