"""The few-shot target data: ``finetune.shots`` seeded-random training images per class, seeded loaders."""

from __future__ import annotations

import logging

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset

from ...data.datamodule import ImageFolderDataModule
from ...data.images import DataError
from ...data.seeded import eval_loader, seeded_loader
from .sources import Source


def few_shot(rows: list[dict], shots: int | None, seed: int) -> list[dict]:
    """Keep ``shots`` seeded-random training images per class (all of them if None); other splits whole.

    Raises:
        DataError: a class has fewer than ``shots`` training images.
    """
    if not shots:
        return rows
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[dict]] = {}
    for r in sorted((r for r in rows if r["split"] == "train"), key=lambda r: r["path"]):
        by_class.setdefault(r["label"], []).append(r)
    keep = set()
    for label, items in sorted(by_class.items()):
        if len(items) < shots:
            raise DataError(f"class {label!r} has {len(items)} training images, fewer than finetune.shots={shots}")
        keep.update(items[i]["path"] for i in rng.permutation(len(items))[:shots])
    return [r for r in rows if r["split"] != "train" or r["path"] in keep]


def target_data(cfg: DictConfig, src: Source, augment: bool) -> ImageFolderDataModule:
    """The target data set at the source's input size and normalisation, its train split cut to ``shots``."""
    transform = instantiate(cfg.augment) if augment else None
    dm = ImageFolderDataModule(cfg.paths.prepared, src.input_size, batch_size=cfg.batch_size,
                               num_workers=cfg.num_workers, train_transform=transform)
    dm.rows = few_shot(dm.rows, cfg.finetune.shots, cfg.seed)
    logging.getLogger(__name__).info(
        "finetune.shots=%s: %s training images per class of %s (%d in all); val and test splits whole",
        cfg.finetune.shots, cfg.finetune.shots or "all", cfg.data.name, sum(r["split"] == "train" for r in dm.rows))
    if src.normalization:  # the features were learnt on inputs normalised this way
        dm.meta["mean"], dm.meta["std"] = src.normalization["mean"], src.normalization["std"]
    return dm


def loader(ds: Dataset, batch_size: int, shuffle: bool, seed: int, num_workers: int = 0) -> DataLoader:
    """A DataLoader whose order and augmentation depend on ``seed`` and the epoch alone (not on how
    much RNG ran before), so that every strategy sees the same batches and a resumed run those of
    the uninterrupted one (:mod:`cnnlab.data.seeded`)."""
    if not shuffle:
        return eval_loader(ds, batch_size, num_workers)
    return seeded_loader(ds, batch_size=batch_size, shuffle=True, seed=seed, num_workers=num_workers)
