"""The YOLO loss (v1's sum-squared form with v2's anchor parametrisation), λ weights from config.

For raw outputs ``t`` and targets ``y`` (:mod:`.encoding`), with 1^obj the slots an object was
assigned to (its cell and best anchor) and 1^noobj all the others, summed over slots and
averaged over the batch::

    λ_coord Σ 1^obj [(σ(t_x) − b_x)² + (σ(t_y) − b_y)²
                     + (t_w − log(b_w / p_w))² + (t_h − log(b_h / p_h))²]
  + λ_obj   Σ 1^obj   BCE(σ(t_o), 1)               (objectness: bce; or sse: (σ(t_o) − 1)², v1's)
  + λ_noobj Σ 1^noobj  BCE(σ(t_o), 0)               (sse: σ(t_o)²)
  + λ_class Σ 1^obj   CE(softmax(t_c), c)          (class_loss: ce; or sse: Σ (softmax − one-hot)²)

Sizes are regressed in log space against the anchor (v2), which is scale-aware as v1's √w, √h
is and cannot overflow. Objectness defaults to the logistic loss (as YOLOv3, and as the course
calls the better choice for p_c): v1's squared error on σ(t_o) has a vanishing gradient where σ
saturates, and learnt several times slower on the scenes. Defaults are v1's λ_coord = 5,
λ_noobj = 0.5 (most slots hold nothing).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .encoding import BH, BW, BX, BY, PC, anchors_in_cells


def yolo_loss(raw: torch.Tensor, target: torch.Tensor, anchors: torch.Tensor | list, *,
              lambda_coord: float = 5.0, lambda_obj: float = 1.0, lambda_noobj: float = 0.5,
              lambda_class: float = 1.0, class_loss: str = "ce", objectness: str = "bce") -> dict[str, torch.Tensor]:
    """The loss of a batch and its parts.

    Args:
        raw: ``[m, S, S, B, 5+C]`` network output before any activation.
        target: same shape, from :func:`.encoding.encode`.
        anchors: ``[B, 2]`` (w, h) fractions of the input side.

    Returns:
        ``{"loss", "coord", "obj", "noobj", "class"}``, each a scalar (weighted; ``loss`` their sum).
    """
    if class_loss not in ("ce", "sse"):
        raise ValueError(f"detector.loss.class_loss must be 'ce' or 'sse', got {class_loss!r}")
    if objectness not in ("bce", "sse"):
        raise ValueError(f"detector.loss.objectness must be 'bce' or 'sse', got {objectness!r}")
    m = raw.shape[0]
    obj = target[..., PC] > 0.5
    anchors_c = anchors_in_cells(anchors, raw.shape[-3]).to(raw)
    t, y = raw[obj], target[obj]
    a = anchors_c.expand(*obj.shape, 2)[obj]
    coord = ((t[:, BX].sigmoid() - y[:, BX]) ** 2 + (t[:, BY].sigmoid() - y[:, BY]) ** 2
             + (t[:, BW] - torch.log(y[:, BW] / a[:, 0])) ** 2 + (t[:, BH] - torch.log(y[:, BH] / a[:, 1])) ** 2).sum()
    if objectness == "bce":
        obj_l = F.binary_cross_entropy_with_logits(raw[..., PC][obj], torch.ones_like(raw[..., PC][obj]), reduction="sum")
        noobj_l = F.binary_cross_entropy_with_logits(raw[..., PC][~obj], torch.zeros_like(raw[..., PC][~obj]),
                                                     reduction="sum")
    else:
        conf = raw[..., PC].sigmoid()
        obj_l = ((conf[obj] - 1) ** 2).sum()
        noobj_l = (conf[~obj] ** 2).sum()
    if class_loss == "ce":
        cls = F.cross_entropy(t[:, 5:], y[:, 5:].argmax(1), reduction="sum") if len(t) else raw.sum() * 0
    else:
        cls = ((t[:, 5:].softmax(1) - y[:, 5:]) ** 2).sum()
    parts = {"coord": lambda_coord * coord / m, "obj": lambda_obj * obj_l / m,
             "noobj": lambda_noobj * noobj_l / m, "class": lambda_class * cls / m}
    return {"loss": sum(parts.values()), **parts}
