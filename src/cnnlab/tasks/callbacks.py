"""Lightning callbacks that route epoch metrics to MLflow through :mod:`cnnlab.track`."""

from __future__ import annotations

import lightning as L
import torch


class MLflowMetrics(L.Callback):
    """Log every scalar in ``trainer.callback_metrics`` at the end of each training epoch.

    Uses the stage's :class:`~cnnlab.track.Tracker` (and so its sqlite lock) instead of
    Lightning's MLFlowLogger, which would open a second, unlocked client on the same store.
    """

    def __init__(self, tracker):
        self.tracker = tracker

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = {k.replace("/", "_"): float(v) for k, v in trainer.callback_metrics.items()
                   if isinstance(v, torch.Tensor) and v.numel() == 1}
        metrics["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
        self.tracker.log_metrics(metrics, step=trainer.current_epoch)
