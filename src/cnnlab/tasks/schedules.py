"""Learning-rate decay schedules from the course that torch does not ship as a class.

The course lists, for epoch number ``epoch`` and initial rate α0:

1. α = α0 / (1 + decay_rate · epoch)   → :func:`inverse_time` (here)
2. α = 0.95^epoch · α0 (exponential)   → ``torch.optim.lr_scheduler.ExponentialLR(gamma=0.95)``
3. discrete staircase                   → ``torch.optim.lr_scheduler.StepLR``

plus cosine annealing (``CosineAnnealingLR``), which the course does not name. The configs in
``conf/scheduler/`` are ``_partial_`` factories called with the optimiser; the Classifier steps
them once per epoch. Epochs count from 0, as Lightning's ``current_epoch`` does, so the first
epoch runs at α0 (the configured ``optim.lr``). The lecture counts from 1: its table for α0 = 0.2,
decay_rate = 1 (0.1, 0.067, 0.05, 0.04) is our epochs 1 to 4.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.optim.lr_scheduler import LambdaLR


@dataclass(frozen=True)
class InverseTimeDecay:
    """The multiplier 1 / (1 + decay_rate · epoch).

    A picklable callable rather than a lambda: LambdaLR then keeps ``decay_rate`` in its
    ``state_dict`` (plain floats, so checkpoints still load with ``weights_only=True``).
    """

    decay_rate: float

    def __call__(self, epoch: int) -> float:
        return 1.0 / (1.0 + self.decay_rate * epoch)


def inverse_time(optimizer: torch.optim.Optimizer, decay_rate: float) -> LambdaLR:
    """α = α0 / (1 + decay_rate · epoch), the course's first decay formula.

    Raises:
        ValueError: ``decay_rate`` is negative (the rate would grow, then divide by zero).
    """
    if decay_rate < 0:
        raise ValueError(f"scheduler.decay_rate must be >= 0, got {decay_rate}")
    return LambdaLR(optimizer, InverseTimeDecay(float(decay_rate)))


DEFAULT_OPTIM = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3}


def configure_optimizers(params, optim: dict | None, scheduler: dict | None = None):
    """What every task's ``LightningModule.configure_optimizers`` returns.

    Args:
        params: the parameters to optimise (e.g. only those with ``requires_grad``).
        optim: a ``conf/optim`` node (``_partial_: true``); ``None``: Adam at 1e-3.
        scheduler: a ``conf/scheduler`` node (``_partial_: true``), stepped once per epoch; or ``None``.
    """
    from hydra.utils import instantiate

    optimizer = instantiate(optim or DEFAULT_OPTIM)(params)
    if not scheduler:
        return optimizer
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": instantiate(scheduler)(optimizer), "interval": "epoch"}}
