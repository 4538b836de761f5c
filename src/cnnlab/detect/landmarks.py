"""Landmark detection (the course's week 3): regress the 5 face landmarks (10 numbers) of a face crop.

Landmarks are dlib's 5 points (0, 1: one eye's outer and inner corner; 2, 3: the other eye's;
4: below the nose). The data set stores them in pixel-index coordinates (dlib's: pixel ``i``'s
centre is at ``i``); crops hold them in crop units ((0, 0) the crop's top-left corner, (1, 1) its
bottom-right), as the boxes. The error is the
normalised mean error: the mean point-to-point distance divided by the inter-ocular distance (the
distance between the two eyes' centres), averaged over faces. Two references: dlib's 5-point
shape predictor run on the same crop's face box, and the mean training shape.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn as nn

from ..models import create_model
from ..tasks.steps import StepsByStage


def interocular(marks: np.ndarray) -> np.ndarray:
    """Distance between the eye centres of ``[N, 5, 2]`` landmarks."""
    return np.linalg.norm(marks[:, 0:2].mean(1) - marks[:, 2:4].mean(1), axis=1)


def nme(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per-face normalised mean error ``[N]`` (mean point distance / inter-ocular distance of ``true``)."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    return np.linalg.norm(pred - true, axis=2).mean(1) / interocular(true)


def mean_shape(marks: np.ndarray) -> np.ndarray:
    """The baseline: the training faces' mean landmarks, ``[5, 2]`` in crop units."""
    return np.asarray(marks, np.float64).mean(0)


def dlib_landmarks(image: np.ndarray, box: Any) -> np.ndarray:
    """dlib's 5-point predictor on ``image`` (``[H, W, 3]`` uint8) for the face ``box`` (``xyxy``).

    Returns:
        ``[5, 2]`` landmarks in image pixels (pixel-index convention, as the data set's).
    """
    import dlib

    from ..face.detection.align import landmark_predictor

    grey = np.ascontiguousarray(np.asarray(image).mean(2).astype(np.uint8))
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    shape = landmark_predictor()(grey, dlib.rectangle(x1, y1, x2 - 1, y2 - 1))
    return np.array([(shape.part(k).x, shape.part(k).y) for k in range(5)], dtype=np.float64)


class LandmarkRegressor(StepsByStage, L.LightningModule):
    """Any registry backbone + a linear head of 10 outputs (the 5 ``(x, y)`` in crop units), squared error.

    Hyper-parameters are plain types (``weights_only=True`` checkpoints) and carry what is needed
    to use it: architecture and kwargs, input size, normalisation.
    """

    def __init__(self, arch: str, input_size: list[int], normalization: dict[str, list[float]],
                 model_kwargs: dict[str, Any] | None = None, in_chans: int = 3, optim: dict[str, Any] | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.backbone = create_model(arch, num_classes=10, in_chans=in_chans, **(model_kwargs or {}))
        self.backbone.reset_classifier(0)
        self.head = nn.Linear(self.backbone.num_features, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 5, 2]`` landmarks in crop units."""
        feats = self.backbone.forward_head(self.backbone.forward_features(x), pre_logits=True)
        return (0.5 + self.head(feats)).view(-1, 5, 2)

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, marks = batch
        pred = self(x)
        loss = ((pred - marks) ** 2).sum((1, 2)).mean()
        self.log(f"{stage}/loss", loss, prog_bar=True, on_step=False, on_epoch=True)
        if stage == "val":
            iod = (marks[:, 0:2].mean(1) - marks[:, 2:4].mean(1)).norm(dim=1)
            self.log("val/nme", ((pred - marks).norm(dim=2).mean(1) / iod).mean(), prog_bar=True,
                     on_step=False, on_epoch=True)
        return loss

