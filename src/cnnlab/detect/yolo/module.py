"""The YOLO LightningModule: targets encoded per batch, the YOLO loss, the course's prediction."""

from __future__ import annotations

from typing import Any

import torch

from ..module import DetectorModule
from .encoding import encode
from .loss import yolo_loss
from .model import YOLONet
from .predict import yolo_eval, yolo_head

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class YOLO(DetectorModule):
    """YOLO on a registry backbone.

    Args:
        classes: class names (no background); their order defines the label ids.
        backbone: registry name; ``backbone_kwargs`` go to its builder.
        input_size: side of the square (letterboxed) input.
        anchors: ``[B, 2]`` (w, h) as fractions of the input side (hand-chosen or k-means).
        head_width, head_layers: the 3×3 convs between the backbone and the prediction (:class:`.model.YOLONet`).
        loss: λ weights and ``class_loss`` for :func:`.loss.yolo_loss`.
        score: display/CLI score threshold (the course's 0.6); ``iou``: NMS IoU (0.5).
        optim, scheduler: Hydra configs (dicts) of the optimiser (``_partial_``) and LR scheduler.
    """

    kind = "yolo"

    def __init__(self, classes: list[str], backbone: str, input_size: int, anchors: list[list[float]],
                 backbone_kwargs: dict[str, Any] | None = None, head_width: int = 128, head_layers: int = 1,
                 loss: dict[str, Any] | None = None, score: float = 0.6, iou: float = 0.5,
                 optim: dict[str, Any] | None = None, scheduler: dict[str, Any] | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.hparams["kind"] = self.kind
        self.net = YOLONet(backbone, len(classes), len(anchors), input_size, backbone_kwargs, head_width,
                           head_layers)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Float images ``[m, 3, H, W]`` in [0, 1] → raw ``[m, S, S, B, 5+C]``."""
        return self.net((x - self.mean) / self.std)

    def losses(self, images, targets):
        x = torch.stack(images)
        size = tuple(x.shape[-2:])
        y = torch.stack([encode(t["boxes"], t["labels"], size, self.net.grid, self.hparams.anchors,
                                len(self.hparams.classes)) for t in targets]).to(x)
        return yolo_loss(self(x), y, self.hparams.anchors, **(self.hparams.loss or {}))

    @torch.no_grad()
    def detect(self, images, score: float, iou: float):
        x = torch.stack(images)
        size = tuple(x.shape[-2:])
        y = yolo_head(self(x), self.hparams.anchors)
        return [yolo_eval(yi, size, score, iou) for yi in y]
