"""The YOLO loss (v1's sum-squared form with v2's anchor parametrisation), λ weights from config.

For raw outputs ``t`` and targets ``y`` (:mod:`.encoding`), with 1^obj the slots an object was
assigned to (its cell and best anchor) and 1^noobj all the others, summed over slots and
averaged over the batch::

    λ_coord Σ 1^obj [(σ(t_x) − b_x)² + (σ(t_y) − b_y)²
                     + (t_w − log(b_w / p_w))² + (t_h − log(b_h / p_h))²]
  + λ_obj   Σ 1^obj   BCE(σ(t_o), 1)               (objectness: bce; or sse: (σ(t_o) − 1)², v1's)
  + λ_noobj Σ 1^noobj  BCE(σ(t_o), 0)               (sse: σ(t_o)²)
  + λ_class Σ 1^obj   CE(softmax(t_c), c)          (class_loss: ce; or sse: Σ (softmax − one-hot)²)

With ``ignore_iou`` (YOLOv2's "ignore thresh", 0.6 in its cfg), an empty slot whose predicted box
overlaps some true box of its image by more than that IoU is left out of the no-object term: the
second-best anchor of an object's cell, or the neighbouring cell, is not punished for predicting
the object well (it is not trained towards it either; NMS removes the duplicate).

Sizes are regressed in log space against the anchor (v2), which is scale-aware as v1's √w, √h
is and cannot overflow. Objectness defaults to the logistic loss (as YOLOv3, and as the course
calls the better choice for p_c): v1's squared error on σ(t_o) has a vanishing gradient where σ
saturates, and learnt several times slower on the scenes. Defaults are v1's λ_coord = 5,
λ_noobj = 0.5 (most slots hold nothing).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from torchvision.ops import box_iou

from .encoding import BH, BW, BX, BY, PC, anchors_in_cells, to_corners


def ignored(raw: torch.Tensor, target: torch.Tensor, anchors: torch.Tensor | list, threshold: float) -> torch.Tensor:
    """Slots whose predicted box has IoU > ``threshold`` with a true box of their image: ``bool [m, S, S, B]``.

    Boxes are compared in grid units (any image size gives the same IoU). No gradient flows.
    """
    from .predict import yolo_head

    with torch.no_grad():
        size = (raw.shape[-4], raw.shape[-3])  # (rows, columns) of the grid
        pred = to_corners(yolo_head(raw.detach(), anchors), size)  # [m, S, S, B, 4]
        truth = to_corners(target, size)
        out = torch.zeros(raw.shape[:-1], dtype=torch.bool, device=raw.device)
        for i in range(raw.shape[0]):
            gt = truth[i][target[i, ..., PC] > 0.5]
            if len(gt):
                out[i] = (box_iou(pred[i].reshape(-1, 4), gt).max(1).values > threshold).view(out.shape[1:])
    return out


def yolo_loss(raw: torch.Tensor, target: torch.Tensor, anchors: torch.Tensor | list, *,
              lambda_coord: float = 5.0, lambda_obj: float = 1.0, lambda_noobj: float = 0.5,
              lambda_class: float = 1.0, class_loss: str = "ce", objectness: str = "bce",
              ignore_iou: float | None = None) -> dict[str, torch.Tensor]:
    """The loss of a batch and its parts.

    Args:
        raw: ``[m, S, S, B, 5+C]`` network output before any activation.
        target: same shape, from :func:`.encoding.encode`.
        anchors: ``[B, 2]`` (w, h) fractions of the input side.
        ignore_iou: leave out of the no-object term the empty slots whose predicted box overlaps a
            true box by more than this IoU (None or ≥ 1: every empty slot counts, v1's form).

    Returns:
        ``{"loss", "coord", "obj", "noobj", "class"}``, each a scalar (weighted; ``loss`` their sum).
    """
    if class_loss not in ("ce", "sse"):
        raise ValueError(f"detector.loss.class_loss must be 'ce' or 'sse', got {class_loss!r}")
    if objectness not in ("bce", "sse"):
        raise ValueError(f"detector.loss.objectness must be 'bce' or 'sse', got {objectness!r}")
    m = raw.shape[0]
    obj = target[..., PC] > 0.5
    noobj = ~obj
    if ignore_iou is not None and ignore_iou < 1:
        noobj = noobj & ~ignored(raw, target, anchors, float(ignore_iou))
    anchors_c = anchors_in_cells(anchors, raw.shape[-3]).to(raw)
    t, y = raw[obj], target[obj]
    a = anchors_c.expand(*obj.shape, 2)[obj]
    coord = ((t[:, BX].sigmoid() - y[:, BX]) ** 2 + (t[:, BY].sigmoid() - y[:, BY]) ** 2
             + (t[:, BW] - torch.log(y[:, BW] / a[:, 0])) ** 2 + (t[:, BH] - torch.log(y[:, BH] / a[:, 1])) ** 2).sum()
    if objectness == "bce":
        obj_l = F.binary_cross_entropy_with_logits(raw[..., PC][obj], torch.ones_like(raw[..., PC][obj]), reduction="sum")
        noobj_l = F.binary_cross_entropy_with_logits(raw[..., PC][noobj], torch.zeros_like(raw[..., PC][noobj]),
                                                     reduction="sum")
    else:
        conf = raw[..., PC].sigmoid()
        obj_l = ((conf[obj] - 1) ** 2).sum()
        noobj_l = (conf[noobj] ** 2).sum()
    if class_loss == "ce":
        cls = F.cross_entropy(t[:, 5:], y[:, 5:].argmax(1), reduction="sum") if len(t) else raw.sum() * 0
    else:
        cls = ((t[:, 5:].softmax(1) - y[:, 5:]) ** 2).sum()
    parts = {"coord": lambda_coord * coord / m, "obj": lambda_obj * obj_l / m,
             "noobj": lambda_noobj * noobj_l / m, "class": lambda_class * cls / m}
    return {"loss": sum(parts.values()), **parts}
