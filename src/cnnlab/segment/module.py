"""The segmentation LightningModule, full-size prediction, and loading its checkpoints safely."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchmetrics.classification import MulticlassJaccardIndex

from ..models import create_model, get_entry
from .data import IGNORE
from .losses import segmentation_loss
from ..tasks.steps import StepsByStage


def center_crop_target(target: torch.Tensor, hw: Sequence[int]) -> torch.Tensor:
    """The centre ``hw`` of a mask batch: the part a valid-convolution network (the paper's) predicts."""
    h, w = target.shape[-2:]
    top, left = (h - hw[0]) // 2, (w - hw[1]) // 2
    return target[..., top:top + hw[0], left:left + hw[1]]


def predict_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits at the input's size.

    A network with valid convolutions (the paper's U-Net) predicts a smaller centre; the input is
    then mirrored at its borders by the missing margin (the paper's overlap-tile strategy) and run
    again, and any rounding left is resampled away.
    """
    out = model(x)
    if out.shape[-2:] == x.shape[-2:]:
        return out
    mh, mw = ((a - b + 1) // 2 for a, b in zip(x.shape[-2:], out.shape[-2:]))
    out = model(F.pad(x, (mw, mw, mh, mh), mode="reflect"))
    if out.shape[-2:] != x.shape[-2:]:
        out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return out


class Segmenter(StepsByStage, L.LightningModule):
    """Per-pixel classifier around a registered segmentation model (``unet``, ``unet_backbone``, ...).

    The checkpoint's hyper-parameters hold plain types only (it loads with ``weights_only=True``):
    architecture and kwargs, the class names (``classes[0]`` is the background), input channels
    and training size, and the loss.

    Args:
        arch: registry name (its entry must have ``task="segmentation"``).
        classes: ``[background, *classes]``; a mask value indexes it.
        in_chans: input channels.
        image_size: (H, W) of training.
        model_kwargs: builder kwargs.
        loss: ``ce``, ``weighted_ce``, ``dice`` or ``ce_dice``.
        class_weights: per-class weights for ``weighted_ce``.
        optim: Hydra config (dict) of the optimiser, ``_partial_: true``.
        scheduler: Hydra config (dict) of an LR scheduler factory, or None.
    """

    def __init__(self, arch: str, classes: list[str], in_chans: int, image_size: list[int],
                 model_kwargs: dict[str, Any] | None = None, loss: str = "ce",
                 class_weights: list[float] | None = None, optim: dict[str, Any] | None = None,
                 scheduler: dict[str, Any] | None = None):
        super().__init__()
        if get_entry(arch).default_cfg.get("task") != "segmentation":
            raise ValueError(f"model={arch} is not a segmentation model (use unet, unet_paper, encoder_decoder "
                             f"or unet_backbone)")
        self.save_hyperparameters()
        self.model = create_model(arch, num_classes=len(classes), in_chans=in_chans, **(model_kwargs or {}))
        self.val_miou = MulticlassJaccardIndex(len(classes), average="macro", ignore_index=IGNORE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        logits = self.model(x)
        if logits.shape[-2:] != y.shape[-2:]:
            y = center_crop_target(y, logits.shape[-2:])
        loss = segmentation_loss(self.hparams.loss, logits, y, self.hparams.class_weights)
        self.log(f"{stage}/loss", loss, prog_bar=True, on_step=False, on_epoch=True, sync_dist=True)
        if stage == "val":
            self.val_miou(logits.argmax(1), y)
            self.log("val/miou", self.val_miou, prog_bar=True, on_step=False, on_epoch=True)
        return loss



def load_segmenter(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network of a segmenter checkpoint, loaded with ``weights_only=True``.

    Returns:
        ``(model in eval mode, hyper-parameters)``.

    Raises:
        cnnlab.checkpoint.CheckpointMissing: no such file (a ``FileNotFoundError``).
        cnnlab.checkpoint.CheckpointError: truncated, refused (pickles objects), or not a cnnlab
            segmenter checkpoint (a ``ValueError``).
    """
    from ..checkpoint import load_weights, read_lightning, sub_state

    ckpt = read_lightning(path, "segmenter checkpoint", requires=("arch", "image_size", "classes", "in_chans"))
    hp = ckpt["hyper_parameters"]
    model = create_model(hp["arch"], num_classes=len(hp["classes"]), in_chans=hp["in_chans"],
                         **(hp.get("model_kwargs") or {}))
    load_weights(model, sub_state(ckpt["state_dict"], "model."), f"{path}: its weights")
    return model.eval(), dict(hp)
