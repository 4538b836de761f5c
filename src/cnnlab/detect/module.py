"""What every detector LightningModule shares: mAP on the validation split, optimiser from config.

A subclass implements ``losses(images, targets) -> dict`` (``"loss"`` plus parts, all logged)
and ``detect(images, score, iou) -> list[{"boxes", "scores", "labels"}]`` in the input's
(letterboxed) pixels. Hyper-parameters are plain Python types so that checkpoints load with
``weights_only=True``; ``hparams.kind`` names the detector family for :mod:`.checkpoint`.
"""

from __future__ import annotations

import lightning as L
import torch

from .metrics import coco_target, metric
from ..tasks.schedules import configure_optimizers


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
        return configure_optimizers(self.parameters(), self.hparams.optim, self.hparams.get("scheduler"))
