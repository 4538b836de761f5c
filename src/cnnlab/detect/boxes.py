"""Intersection over union and non-max suppression, written as the course states them.

These are the reference versions, tested against ``torchvision.ops.box_iou`` and
``torchvision.ops.batched_nms``; the pipeline itself calls torchvision's (:mod:`.yolo.predict`).
Boxes are corners ``(x1, y1, x2, y2)`` with the origin at the top left, as in the course's
``iou(box1, box2)``.
"""

from __future__ import annotations

from typing import Sequence

import torch


def iou(box1: Sequence[float], box2: Sequence[float]) -> float:
    """The course's ``iou``: intersection area over union area of two corner boxes.

    The course's example ``iou((2, 1, 4, 3), (1, 2, 3, 4))`` is 1/7. Boxes that do not overlap
    (or only touch) have IoU 0.
    """
    x1, y1 = max(box1[0], box2[0]), max(box1[1], box2[1])
    x2, y2 = min(box1[2], box2[2]), min(box1[3], box2[3])
    inter = max(x2 - x1, 0.0) * max(y2 - y1, 0.0)
    area1 = (box1[2] - box1[0]) * (box1[3] - box1[1])
    area2 = (box2[2] - box2[0]) * (box2[3] - box2[1])
    union = area1 + area2 - inter
    return float(inter / union) if union > 0 else 0.0


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float = 0.5) -> torch.Tensor:
    """The course's non-max suppression for one class.

    While boxes remain: pick the one with the largest score, output it as a prediction, and
    discard every remaining box that overlaps it by more than ``iou_threshold``. The course says
    "IoU ≥ 0.5"; torchvision discards IoU strictly greater than the threshold, and so does this
    function, so that the two agree on ties too.

    Returns:
        Indices of the kept boxes, by decreasing score (torchvision's order).
    """
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    keep: list[int] = []
    while order:
        best = order.pop(0)
        keep.append(best)
        order = [i for i in order if iou(boxes[best].tolist(), boxes[i].tolist()) <= iou_threshold]
    return torch.tensor(keep, dtype=torch.int64)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                iou_threshold: float = 0.5) -> torch.Tensor:
    """Non-max suppression run separately for each class (the course: "one class at a time").

    Returns:
        Indices of the kept boxes over all classes, by decreasing score.
    """
    keep = []
    for c in labels.unique():
        idx = torch.nonzero(labels == c).flatten()
        keep.append(idx[nms(boxes[idx], scores[idx], iou_threshold)])
    if not keep:
        return torch.zeros(0, dtype=torch.int64)
    keep_t = torch.cat(keep)
    return keep_t[torch.argsort(scores[keep_t], descending=True, stable=True)]


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU [N, M] of corner boxes, with :func:`iou` applied to every pair."""
    return torch.tensor([[iou(a.tolist(), b.tolist()) for b in boxes2] for a in boxes1], dtype=torch.float64)


def wh_iou(wh1: torch.Tensor, wh2: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU [N, K] of box shapes ``(w, h)`` placed at a common centre.

    This is how YOLO matches an object to an anchor and how its k-means measures distance.
    """
    inter = torch.minimum(wh1[:, None, 0], wh2[None, :, 0]) * torch.minimum(wh1[:, None, 1], wh2[None, :, 1])
    union = (wh1[:, 0] * wh1[:, 1])[:, None] + (wh2[:, 0] * wh2[:, 1])[None, :] - inter
    return inter / union.clamp_min(1e-12)
