"""Classification with localisation (the course's week 3): the y vector, its two losses, a module.

The target of a crop is the course's ``y = (p_c, b_x, b_y, b_h, b_w, c_1, ..., c_n)``: ``p_c`` = 1
if the crop holds an object of one of the ``n`` classes (0 for background, the rest "don't
care"), the box in the course's convention (crop top-left (0, 0), bottom-right (1, 1), ``b_x``,
``b_y`` its centre, ``b_h``, ``b_w`` its size) and the one-hot class.

Losses (``localiser.loss``):

* ``course``: squared error on all 5 + n components when ``y_1 = 1``, on ``p_c`` only when
  ``y_1 = 0``, on ``ŷ = (σ(p_c), σ(box), softmax(classes))`` (the activations keep ŷ in y's range).
* ``logistic`` (the course's better version): logistic loss on ``p_c``, log-likelihood
  (cross-entropy) on the classes, squared error on the box; the last two only when ``y_1 = 1``.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models import create_model
from ..tasks.steps import StepsByStage

LOSSES = ("course", "logistic")


def encode_y(class_id: torch.Tensor, box: torch.Tensor, n: int) -> torch.Tensor:
    """The course's y vectors ``[N, 5 + n]`` from class ids (-1 = background) and ``(b_x, b_y, b_h, b_w)``."""
    has = (class_id >= 0).float()
    onehot = F.one_hot(class_id.clamp(min=0), n).float() * has[:, None]
    return torch.cat([has[:, None], box * has[:, None], onehot], 1)


def activations(out: torch.Tensor) -> torch.Tensor:
    """ŷ from the network's raw outputs: σ(p_c), σ(box), softmax(classes)."""
    return torch.cat([torch.sigmoid(out[:, :5]), out[:, 5:].softmax(1)], 1)


def course_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared error on every component if ``y_1 = 1``, on ``p_c`` only if ``y_1 = 0`` (mean over crops)."""
    se = (activations(out) - y) ** 2
    per = torch.where(y[:, 0] > 0.5, se.sum(1), se[:, 0])
    return per.mean()


def logistic_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Logistic loss on ``p_c``; cross-entropy on the classes and squared error on the box, for objects."""
    has = y[:, 0] > 0.5
    loss = F.binary_cross_entropy_with_logits(out[:, 0], y[:, 0])
    if has.any():
        loss = loss + F.cross_entropy(out[has, 5:], y[has, 5:].argmax(1))
        loss = loss + ((torch.sigmoid(out[has, 1:5]) - y[has, 1:5]) ** 2).sum(1).mean()
    return loss


def to_xyxy(b: torch.Tensor) -> torch.Tensor:
    """``(b_x, b_y, b_h, b_w)`` → ``(x1, y1, x2, y2)``."""
    bx, by, bh, bw = b.unbind(-1)
    return torch.stack([bx - bw / 2, by - bh / 2, bx + bw / 2, by + bh / 2], -1)


def decode(out: torch.Tensor) -> dict[str, torch.Tensor]:
    """``p_c``, the class (argmax of the class scores) and the box, from raw outputs."""
    yh = activations(out)
    return {"p_c": yh[:, 0], "class_id": yh[:, 5:].argmax(1), "box": yh[:, 1:5]}


def scores(out: torch.Tensor, class_id: torch.Tensor, box: torch.Tensor) -> dict[str, float]:
    """Classification accuracy (background counts as a class: ``p_c < 0.5``), localisation accuracy
    (an object crop with the right class and IoU ≥ 0.5) and the mean IoU over object crops."""
    from torchvision.ops import box_iou

    d = decode(out)
    pred = torch.where(d["p_c"] >= 0.5, d["class_id"], torch.full_like(d["class_id"], -1))
    has = class_id >= 0
    iou = box_iou(to_xyxy(d["box"][has]), to_xyxy(box[has])).diagonal() if has.any() else torch.zeros(0)
    right = pred[has] == class_id[has]
    return {"accuracy": float((pred == class_id).float().mean()),
            "localisation_accuracy": float((right & (iou >= 0.5)).float().mean()) if has.any() else 0.0,
            "mean_iou": float(iou.mean()) if has.any() else 0.0,
            "object_accuracy": float(right.float().mean()) if has.any() else 0.0}


class Localiser(StepsByStage, L.LightningModule):
    """Any registry backbone (``forward_features`` → pre-logits) + a linear head of ``5 + n`` outputs.

    Hyper-parameters are plain types, so checkpoints load with ``weights_only=True`` and carry the
    class names, input size, normalisation, architecture and kwargs.
    """

    def __init__(self, arch: str, classes: list[str], input_size: list[int], normalization: dict[str, list[float]],
                 loss: str = "logistic", model_kwargs: dict[str, Any] | None = None, in_chans: int = 3,
                 optim: dict[str, Any] | None = None):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"localiser.loss must be one of {LOSSES}, got {loss!r}")
        self.save_hyperparameters()
        self.backbone = create_model(arch, num_classes=len(classes), in_chans=in_chans, **(model_kwargs or {}))
        self.backbone.reset_classifier(0)
        self.head = nn.Linear(self.backbone.num_features, 5 + len(classes))
        self.loss_fn = course_loss if loss == "course" else logistic_loss

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.forward_head(self.backbone.forward_features(x), pre_logits=True))

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, class_id, box = batch
        out = self(x)
        loss = self.loss_fn(out, encode_y(class_id, box, len(self.hparams.classes)))
        self.log(f"{stage}/loss", loss, prog_bar=True, on_step=False, on_epoch=True)
        if stage == "val":
            for k, v in scores(out, class_id, box).items():
                self.log(f"val/{k}", v, on_step=False, on_epoch=True, prog_bar=k == "localisation_accuracy")
        return loss

