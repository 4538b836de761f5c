"""Lightning callbacks that route epoch metrics to MLflow through :mod:`cnnlab.track`."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch

RUN_RECORD = "mlflow_run.json"


class MLflowMetrics(L.Callback):
    """Log every scalar in ``trainer.callback_metrics`` at the end of each training epoch.

    Uses the stage's :class:`~cnnlab.track.Tracker` (and so its sqlite lock) instead of
    Lightning's MLFlowLogger, which would open a second, unlocked client on the same store.

    It also links a resumed run to the one it continues: the run id is recorded in the
    trainer's ``default_root_dir`` (the skeleton's partial folder, which a fresh run empties), so
    a run that finds a record there is a resume; see :meth:`cnnlab.track.Tracker.link_resumed`.
    """

    def __init__(self, tracker):
        self.tracker = tracker

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from ..io import write_json

        if not trainer.is_global_zero or self.tracker.run_id is None:
            return
        record = Path(trainer.default_root_dir) / RUN_RECORD
        if record.is_file():
            previous = json.loads(record.read_text()).get("run_id")
            if previous and previous != self.tracker.run_id:
                self.tracker.link_resumed(previous)
        write_json(record, {"run_id": self.tracker.run_id})

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = {k.replace("/", "_"): float(v) for k, v in trainer.callback_metrics.items()
                   if isinstance(v, torch.Tensor) and v.numel() == 1}
        metrics["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
        self.tracker.log_metrics(metrics, step=trainer.current_epoch)
