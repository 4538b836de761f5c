"""What every detector LightningModule shares: mAP on the validation split, optimiser from config.

A subclass implements ``losses(images, targets) -> dict`` (``"loss"`` plus parts, all logged)
and ``detect(images, score, iou) -> list[{"boxes", "scores", "labels"}]`` in the input's
(letterboxed) pixels. Hyper-parameters are plain Python types so that checkpoints load with
``weights_only=True``; ``hparams.kind`` names the detector family for :mod:`.checkpoint`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import lightning as L
import torch
from torch.optim.lr_scheduler import LambdaLR

from .metrics import coco_target, metric
from ..tasks.schedules import configure_optimizers


@dataclass(frozen=True)
class WarmupCosine:
    """The multiplier of step ``t``: linear warm-up from ``start`` to 1 over ``warmup`` steps, then a
    half-cosine from 1 down to ``floor`` at step ``total`` (and ``floor`` after it).

    A picklable callable (plain numbers in the scheduler's ``state_dict``), stepped once per batch.
    """

    warmup: int
    total: int
    floor: float = 0.05
    start: float = 0.1

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return self.start + (1 - self.start) * step / self.warmup
        span = max(self.total - self.warmup, 1)
        done = min((step - self.warmup) / span, 1.0)
        return self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * done))


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup: int, total: int, floor: float = 0.05) -> LambdaLR:
    """Per-step linear warm-up then cosine decay (:class:`WarmupCosine`).

    Raises:
        ValueError: ``total`` < 1, ``warmup`` < 0 or ``floor`` outside [0, 1].
    """
    if total < 1 or warmup < 0 or not 0 <= floor <= 1:
        raise ValueError(f"warm-up/cosine schedule needs total >= 1, warmup >= 0, 0 <= floor <= 1; got "
                         f"total={total}, warmup={warmup}, floor={floor}")
    return LambdaLR(optimizer, WarmupCosine(int(warmup), int(total), float(floor)))


class DetectorModule(L.LightningModule):
    """Base class (see the module docstring)."""

    eval_score = 0.01  # mAP ranks every detection: a low floor, not the display threshold

    def losses(self, images: list[torch.Tensor], targets: list[dict]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def detect(self, images: list[torch.Tensor], score: float, iou: float) -> list[dict[str, torch.Tensor]]:
        raise NotImplementedError

    def on_validation_epoch_start(self) -> None:
        self.val_map = metric()

    def training_step(self, batch, batch_idx):
        images, targets = batch
        parts = self.losses(images, targets)
        bs = len(images)
        for k, v in parts.items():
            self.log(f"train/{k}", v, on_step=False, on_epoch=True, prog_bar=k == "loss", batch_size=bs)
        return parts["loss"]

    def validation_step(self, batch, batch_idx):
        images, targets = batch
        preds = self.detect(images, self.eval_score, self.hparams.iou)
        self.val_map.update([{k: v.cpu() for k, v in p.items()} for p in preds], [coco_target(t) for t in targets])

    def on_validation_epoch_end(self) -> None:
        result = self.val_map.compute()
        self.log("val/map_50", max(float(result["map_50"]), 0.0), prog_bar=True)
        self.log("val/map_50_95", max(float(result["map"]), 0.0))
        del self.val_map

    def configure_optimizers(self):
        """The optimiser of ``hparams.optim``; with ``hparams.scheduler = {"warmup_epochs", "floor"}`` (the
        detector config's ``schedule``), a per-step linear warm-up then cosine decay over the whole fit."""
        sched = self.hparams.get("scheduler")
        if not sched or "_target_" in sched:
            return configure_optimizers(self.parameters(), self.hparams.optim, sched)
        optimizer = configure_optimizers(self.parameters(), self.hparams.optim)
        total = int(self.trainer.estimated_stepping_batches)
        per_epoch = max(total // max(int(self.trainer.max_epochs or 1), 1), 1)
        warmup = min(round(float(sched.get("warmup_epochs", 1.0)) * per_epoch), total - 1)
        schedule = warmup_cosine(optimizer, max(warmup, 0), total, float(sched.get("floor", 0.05)))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
