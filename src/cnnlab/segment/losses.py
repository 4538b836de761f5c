"""Pixel losses: cross-entropy, weighted cross-entropy and soft Dice (``segmenter.loss``)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from .data import IGNORE

LOSSES = ("ce", "weighted_ce", "dice", "ce_dice")


def dice_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE, eps: float = 1.0) -> torch.Tensor:
    """1 − the soft Dice coefficient 2|P∩T| / (|P| + |T|), averaged over the classes.

    ``P`` is the softmax probability map and ``T`` the one-hot truth; ignored pixels count in
    neither. ``eps`` (added to both sides) keeps a class absent from the batch at Dice 1.
    """
    n = logits.shape[1]
    valid = (target != ignore_index).unsqueeze(1).to(logits.dtype)
    probs = logits.softmax(1) * valid
    onehot = F.one_hot(target.clamp(max=n - 1), n).permute(0, 3, 1, 2).to(logits.dtype) * valid
    inter = (probs * onehot).sum((0, 2, 3))
    denom = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    return 1 - ((2 * inter + eps) / (denom + eps)).mean()


def segmentation_loss(kind: str, logits: torch.Tensor, target: torch.Tensor,
                      weights: Sequence[float] | None = None) -> torch.Tensor:
    """The configured loss; ``weights`` (per class) are used by ``weighted_ce`` only.

    Raises:
        ValueError: an unknown ``kind``, or ``weighted_ce`` without weights.
    """
    if kind == "ce":
        return F.cross_entropy(logits, target, ignore_index=IGNORE)
    if kind == "weighted_ce":
        if weights is None:
            raise ValueError("segmenter.loss=weighted_ce needs class weights")
        w = torch.as_tensor(weights, dtype=logits.dtype, device=logits.device)
        return F.cross_entropy(logits, target, weight=w, ignore_index=IGNORE)
    if kind == "dice":
        return dice_loss(logits, target)
    if kind == "ce_dice":
        return F.cross_entropy(logits, target, ignore_index=IGNORE) + dice_loss(logits, target)
    raise ValueError(f"segmenter.loss must be one of {', '.join(LOSSES)}, got {kind!r}")
