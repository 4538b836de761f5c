"""Fine-tuning strategies: the new head, and which trunk blocks train at each epoch.

Blocks and freezing are :mod:`cnnlab.models.freezing`'s (one API for fine-tuning, the face
encoder and dlib's network); this module maps the strategy names onto them.
"""

from __future__ import annotations

from typing import Sequence

import lightning as L
import torch
import torch.nn as nn

from ...models.freezing import Block, set_trainable

STRATEGIES = ("head", "partial", "full", "gradual", "scratch")


def replace_head(model: nn.Module, num_classes: int) -> list[nn.Parameter]:
    """``reset_classifier(num_classes)``, zero the new head, and return its parameters.

    A zero head (as in BiT, Kolesnikov et al. 2020) starts every class equally likely. A random
    one would add a random projection of the features that the few steps of a few-shot run,
    one per epoch, are too few to undo.
    """
    old = list(model.parameters())  # kept alive so that no new parameter can reuse an old id
    old_ids = {id(p) for p in old}
    model.reset_classifier(num_classes)
    new = [p for p in model.parameters() if id(p) not in old_ids]
    with torch.no_grad():
        for p in new:
            p.zero_()
    return new


class FreezeSchedule(L.Callback):
    """At every epoch start, train the last ``start + epoch // every`` blocks (``every=None``: fixed).

    With ``every`` set this is gradual unfreezing. The count is logged as ``ft/trainable_blocks``.
    Lightning's own ``BaseFinetuning`` is not used because its frozen BN layers keep normalising
    with batch statistics, which breaks the equality with cached features.
    """

    def __init__(self, blocks: Sequence[Block], start: int, every: int | None = None):
        self.blocks, self.start, self.every = list(blocks), start, every

    def n_trainable(self, epoch: int) -> int:
        grown = epoch // self.every if self.every else 0
        return min(len(self.blocks), self.start + grown)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        n = self.n_trainable(trainer.current_epoch)
        set_trainable(self.blocks, n, training=True)
        pl_module.log("ft/trainable_blocks", float(n), on_step=False, on_epoch=True)


def schedule_for(strategy: str, n_blocks: int | None, every: int | None,
                 blocks: Sequence[Block]) -> tuple[int, int | None]:
    """``(blocks trainable at epoch 0, unfreeze every k epochs or None)`` for a strategy.

    Raises:
        ValueError: unknown strategy, or ``n_blocks`` / ``unfreeze_every`` out of range.
    """
    names = ", ".join(b.name for b in blocks)
    if strategy in ("full", "scratch"):
        return len(blocks), None
    if strategy == "head":
        return 0, None
    if strategy == "partial":
        if not n_blocks or not 1 <= n_blocks <= len(blocks):
            raise ValueError(f"finetune.n_blocks must be 1..{len(blocks)} for strategy=partial, got {n_blocks} "
                             f"(blocks: {names})")
        return n_blocks, None
    if strategy == "gradual":
        if not every or every < 1:
            raise ValueError(f"finetune.unfreeze_every must be >= 1 for strategy=gradual, got {every}")
        if not 0 <= (n_blocks or 0) < len(blocks):
            raise ValueError(f"finetune.n_blocks must be 0..{len(blocks) - 1} for strategy=gradual (blocks: {names})")
        return n_blocks or 0, every
    raise ValueError(f"finetune.strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
