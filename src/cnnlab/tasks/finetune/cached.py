"""Strategy ``head``: frozen features computed once, cached on disk, and a head trained on them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset
from torchmetrics.classification import MulticlassAccuracy

from ...checkpoint import read, sub_state
from ...io import atomic_path
from ..classifier import ClassificationSteps, Classifier


@torch.inference_mode()
def extract_features(model: nn.Module, ds: Dataset, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Pre-logit feature vectors [N, num_features] and targets [N] of ``ds``, in order, in eval mode."""
    model.eval()
    feats, targets = [], []
    for x, y in DataLoader(ds, batch_size=batch_size):
        feats.append(model.forward_head(model.forward_features(x), pre_logits=True))
        targets.append(y)
    return torch.cat(feats).float(), torch.cat(targets)


def dataset_sha256(root: str | Path) -> str:
    """Hash of a prepared folder's dataset.json and manifest.csv (prepared folders are immutable)."""
    h = hashlib.sha256()
    for name in ("dataset.json", "manifest.csv"):
        h.update((Path(root) / name).read_bytes())
    return h.hexdigest()


def cached_features(model: nn.Module, ds: Dataset, key: dict[str, Any],
                    cache_dir: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of ``ds`` from ``<cache_dir>/<split>-<hash of key>.pt``, computed and written once.

    ``key`` must name everything the features depend on: the source file's hash, architecture,
    input size, normalisation, the data set's hash, the split and its image paths.
    """
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    path = Path(cache_dir) / f"{key['split']}-{digest}.pt"
    if path.is_file():
        obj = read(path, "feature cache")
        return obj["features"], obj["targets"]
    feats, targets = extract_features(model, ds)
    with atomic_path(path) as tmp:
        torch.save({"features": feats, "targets": targets, "key": key}, tmp)
    return feats, targets


class CachedHead(ClassificationSteps, L.LightningModule):
    """Trains only a head on precomputed features.

    Its steps, loss, logs and optimiser are the Classifier's (:class:`~cnnlab.tasks.classifier.ClassificationSteps`,
    with ``self.model`` the head here), so the cached path cannot drift from training through the
    frozen backbone. Its checkpoints hold the whole classifier (``full``: frozen trunk and this
    head, with the Classifier's hyper-parameters), so the published ``best.ckpt`` is a classifier
    checkpoint like any other; resuming reads the head back out of it.
    """

    def __init__(self, head: nn.Module, num_classes: int, optim: dict | None, scheduler: dict | None,
                 full: Classifier | None = None):
        super().__init__()
        self.save_hyperparameters(ignore=["head", "full"])
        self.model = head
        object.__setattr__(self, "_full", full)  # not a submodule: its trunk is frozen and never run here
        self.train_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self._full is not None:
            checkpoint["state_dict"] = self._full.state_dict()
            checkpoint["hyper_parameters"] = dict(self._full.hparams)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self._full is not None:
            head = sub_state(checkpoint["state_dict"], "model.head.")
            checkpoint["state_dict"] = {f"model.{k}": v for k, v in head.items()}
