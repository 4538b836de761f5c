"""From network output to boxes, in the course's order (week 3, "Car detection with YOLO").

1. :func:`yolo_head`: raw output ``[m, S, S, B, 5+C]`` → box confidence σ(t_o), box midpoints
   σ(t_x), σ(t_y) in the cell, sizes ``p_w·e^{t_w}``, ``p_h·e^{t_h}`` in cells, class probabilities
   softmax(t_c) (YOLOv2's parametrisation).
2. :func:`yolo_filter_boxes`: score = p_c × c_i; keep the best class of each box if its score
   is ≥ the threshold (0.6 in the course).
3. :func:`yolo_non_max_suppression`: NMS per class at IoU 0.5, with torchvision's
   ``batched_nms`` (equal to :func:`cnnlab.detect.boxes.batched_nms`, see the tests).
"""

from __future__ import annotations

import torch
from torchvision.ops import batched_nms, clip_boxes_to_image

from .encoding import BH, BW, BX, BY, PC, anchors_in_cells, to_corners


def yolo_head(raw: torch.Tensor, anchors: torch.Tensor | list) -> torch.Tensor:
    """Raw output ``[m, S, S, B, 5+C]`` → the course's layout ``(p_c, b_x, b_y, b_h, b_w, c_1..c_C)``.

    ``b_x, b_y`` are σ of the raw values (a midpoint stays in its cell), ``b_w, b_h`` anchor
    sizes (in cells) times e^raw, ``p_c`` is σ, and the class part a softmax.
    """
    grid = raw.shape[-3]
    anchors_c = anchors_in_cells(anchors, grid).to(raw)
    out = torch.empty_like(raw)
    out[..., PC] = raw[..., PC].sigmoid()
    out[..., BX] = raw[..., BX].sigmoid()
    out[..., BY] = raw[..., BY].sigmoid()
    out[..., BW] = anchors_c[:, 0] * raw[..., BW].clamp(max=10).exp()
    out[..., BH] = anchors_c[:, 1] * raw[..., BH].clamp(max=10).exp()
    out[..., 5:] = raw[..., 5:].softmax(-1)
    return out


def yolo_filter_boxes(box_confidence: torch.Tensor, boxes: torch.Tensor, box_class_probs: torch.Tensor,
                      threshold: float = 0.6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The course's ``yolo_filter_boxes``: scores = p_c × c_i, best class per box, keep score ≥ threshold.

    Args:
        box_confidence: ``[..., 1]`` p_c of every slot.
        boxes: ``[..., 4]`` corners.
        box_class_probs: ``[..., C]``.

    Returns:
        ``(scores [N], boxes [N, 4], classes [N])`` of the kept slots.
    """
    box_scores = box_confidence * box_class_probs
    box_class_scores, box_classes = box_scores.max(-1)
    mask = box_class_scores >= threshold
    return box_class_scores[mask], boxes[mask], box_classes[mask]


def yolo_non_max_suppression(scores: torch.Tensor, boxes: torch.Tensor, classes: torch.Tensor,
                             max_boxes: int = 100, iou_threshold: float = 0.5):
    """NMS per class (torchvision's ``batched_nms``), at most ``max_boxes`` by decreasing score."""
    keep = batched_nms(boxes, scores, classes, iou_threshold)[:max_boxes]
    return scores[keep], boxes[keep], classes[keep]


def yolo_eval(y: torch.Tensor, image_size: tuple[int, int], score_threshold: float = 0.6,
              iou_threshold: float = 0.5, max_boxes: int = 100) -> dict[str, torch.Tensor]:
    """Boxes of one image from its decoded output ``[S, S, B, 5+C]`` (after :func:`yolo_head`).

    Returns:
        ``{"boxes": [N, 4] pixel corners clipped to the image, "scores": [N], "labels": [N]}``.
    """
    corners = clip_boxes_to_image(to_corners(y, image_size).reshape(-1, 4), image_size)
    scores, boxes, classes = yolo_filter_boxes(y[..., PC].reshape(-1, 1), corners,
                                               y[..., 5:].reshape(-1, y.shape[-1] - 5), score_threshold)
    scores, boxes, classes = yolo_non_max_suppression(scores, boxes, classes, max_boxes, iou_threshold)
    return {"boxes": boxes, "scores": scores, "labels": classes}
