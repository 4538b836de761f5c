"""Train the three week-3 crop systems through the one training skeleton, and load them back.

``task`` is ``"localiser"``, ``"landmarks"`` or ``"windows"``; each reads its config group
(``conf/<task>/``), cuts its crops from the prepared scenes (:mod:`cnnlab.detect.crops`), and
publishes ``best.ckpt``, ``last.ckpt`` and ``metrics.json`` into ``cfg.paths.<task>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from ..data.images import DataError
from .crops import Crops, normalisation, object_crops, to_tensor
from .data import read_meta
from .windows import WindowClassifier
from ..tasks.steps import StepsByStage

TASKS = ("localiser", "landmarks", "windows")


class WindowTask(StepsByStage, L.LightningModule):
    """The course's window classifier trained with cross-entropy on ``n + 1`` classes (background last)."""

    def __init__(self, classes: list[str], window: int, normalization: dict[str, list[float]], channels: int = 16,
                 hidden: int = 400, sizes: Sequence[float] = (24, 36, 54), stride: int = 2, threshold: float = 0.7,
                 iou: float = 0.3, optim: dict[str, Any] | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.model = WindowClassifier(len(classes) + 1, window, channels, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.log(f"{stage}/loss", loss, prog_bar=True, on_step=False, on_epoch=True)
        self.log(f"{stage}/acc", (logits.argmax(1) == y).float().mean(), prog_bar=True, on_step=False, on_epoch=True)
        return loss



def input_size(cfg: DictConfig, task: str) -> int:
    """The crop side a task trains on: ``<task>.input_size``, the window, or the backbone's own."""
    from ..models import default_input_size

    t = cfg[task]
    if task == "windows":
        return int(t.window)
    return int(t.input_size or default_input_size(cfg.model.name)[-1])


def crops_for(cfg: DictConfig, task: str, split: str) -> Crops:
    """The crops a task trains / is evaluated on (seeded by ``cfg.seed``)."""
    t = cfg[task]
    root = cfg.paths.prepared
    size = input_size(cfg, task)
    if task == "landmarks":
        faces = [read_meta(root)["classes"].index("face")] if "face" in read_meta(root)["classes"] else []
        if not faces:
            raise DataError(f"{root}: no 'face' class, so no landmarks to learn")
        crops = object_crops(root, split, size, cfg.seed, context=tuple(t.context), jitter=t.jitter,
                             max_other=t.max_other, background=0.0, kinds=faces)
        keep = ~np.isnan(crops.landmarks).any(axis=(1, 2))  # faces of a VOC folder carry no landmarks
        if not keep.any():
            raise DataError(f"{root}/{split}: no faces with landmarks")
        return Crops(crops.images[keep], crops.class_id[keep], crops.box[keep], crops.landmarks[keep], crops.source[keep])
    return object_crops(root, split, size, cfg.seed, context=tuple(t.context), jitter=t.jitter,
                        max_other=t.max_other, background=t.background, near_negatives=task == "windows")


def tensors(task: str, crops: Crops, norm: dict[str, list[float]], n_classes: int) -> TensorDataset:
    """A crop set as the ``TensorDataset`` the task's module steps on."""
    x = to_tensor(crops.images, norm)
    if task == "localiser":
        return TensorDataset(x, torch.from_numpy(crops.class_id), torch.from_numpy(crops.box))
    if task == "landmarks":
        return TensorDataset(x, torch.from_numpy(crops.landmarks))
    y = torch.from_numpy(np.where(crops.class_id < 0, n_classes, crops.class_id))
    return TensorDataset(x, y)


class CropData(L.LightningDataModule):
    """Train and validation crops held in memory (a few thousand small crops)."""

    def __init__(self, train: TensorDataset, val: TensorDataset, batch_size: int, seed: int):
        super().__init__()
        self.train, self.val, self.batch_size, self.seed = train, val, batch_size, seed

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True,
                          generator=torch.Generator().manual_seed(self.seed))

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=max(len(self.val), 1))


def build(cfg: DictConfig, task: str) -> tuple[L.LightningModule, CropData, dict[str, Any]]:
    """The task's module (fresh weights) and data, and facts for ``metrics.json``."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    meta = read_meta(cfg.paths.prepared)
    classes = list(meta["classes"])
    train, val = crops_for(cfg, task, "train"), crops_for(cfg, task, "val")
    if len(train) == 0 or len(val) == 0:
        raise DataError(f"{cfg.paths.prepared}: no {task} crops in train or val")
    norm = normalisation(train.images)
    t = cfg[task]
    optim = OmegaConf.to_container(cfg.optim, resolve=True) | {"lr": float(t.lr)}
    size = input_size(cfg, task)
    if task == "localiser":
        from ..tasks.fit import model_kwargs
        from .localiser import Localiser

        module = Localiser(cfg.model.name, classes, [size, size], norm, loss=t.loss, model_kwargs=model_kwargs(cfg),
                           optim=optim)
    elif task == "landmarks":
        from ..tasks.fit import model_kwargs
        from .landmarks import LandmarkRegressor

        module = LandmarkRegressor(cfg.model.name, [size, size], norm, model_kwargs=model_kwargs(cfg), optim=optim)
    else:
        module = WindowTask(classes, size, norm, channels=t.channels, hidden=t.hidden, sizes=list(t.sizes),
                            stride=t.stride, threshold=t.threshold, iou=t.iou, optim=optim)
    data = CropData(tensors(task, train, norm, len(classes)), tensors(task, val, norm, len(classes)),
                    int(t.batch_size), int(cfg.seed))
    return module, data, {"n_train_crops": len(train), "n_val_crops": len(val)}


def train(cfg: DictConfig, task: str, callbacks: Sequence[L.Callback] = ()) -> dict[str, Any]:
    """Seed, build, and train through :func:`cnnlab.tasks.skeleton.fit_and_publish`."""
    from ..tasks.fit import warn_unused_speed
    from ..tasks.skeleton import fit_and_publish

    # small crops held in host memory and small backbones: bf16 (trainer.precision) applies, the rest would not pay
    warn_unused_speed(cfg, f"{task} training")
    L.seed_everything(cfg.seed, workers=True)
    module, data, facts = build(cfg, task)
    t = cfg[task]
    metrics = fit_and_publish(cfg, module, data, cfg.paths[task], monitor=t.monitor, mode=t.mode,
                              patience=t.get("patience"), callbacks=callbacks,
                              trainer_overrides={"max_epochs": int(t.max_epochs)},
                              quiet_warnings=[".*does not have many workers.*", ".*log_every_n_steps.*"])
    return metrics | facts


MODULES = {"localiser": "cnnlab.detect.localiser:Localiser", "landmarks": "cnnlab.detect.landmarks:LandmarkRegressor",
           "windows": "cnnlab.detect.tasks:WindowTask"}


def load(path: str | Path, task: str) -> L.LightningModule:
    """A trained task module from its checkpoint (``weights_only=True``), in eval mode.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a checkpoint of this task (e.g. a classifier's), or it pickles objects.
    """
    import importlib

    from ..checkpoint import CheckpointMismatch, load_weights, read_lightning

    ckpt = read_lightning(path, f"{task} checkpoint")
    hp = dict(ckpt["hyper_parameters"])
    mod, cls = MODULES[task].split(":")
    Cls = getattr(importlib.import_module(mod), cls)
    want = set(__import__("inspect").signature(Cls.__init__).parameters) - {"self"}
    if not set(hp) <= want or "normalization" not in hp:
        raise CheckpointMismatch(f"{path}: not a cnnlab {task} checkpoint (hyper-parameters {sorted(hp)})")
    module = Cls(**hp)
    load_weights(module, ckpt["state_dict"], f"{path}: its weights")
    return module.eval()
