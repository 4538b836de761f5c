"""Lightning callbacks: epoch metrics to MLflow (through :mod:`cnnlab.track`) and to ``history.csv``."""

from __future__ import annotations

import csv
import json
import logging
import os
import warnings
from pathlib import Path

import lightning as L
import torch

from ..track import RUN_RECORD

# One line per event: the ``lightning`` logger has its own stderr handler ("INFO: ...") and also
# propagates to the stage's root handler; with a root handler configured (every stage), drop its own.
if logging.getLogger().hasHandlers():
    for _h in list(logging.getLogger("lightning").handlers):
        if getattr(_h, "stream", None) is not None and type(_h) is logging.StreamHandler:
            logging.getLogger("lightning").removeHandler(_h)


class _NoTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "💡 Tip" not in str(record.msg)


for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch", "lightning.fabric.utilities.rank_zero"):
    logging.getLogger(_name).addFilter(_NoTips())
# torch's pytree deprecation inside Lightning's own code: nothing a user can do about it.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")

HISTORY = "history.csv"
CURVES = "learning_curves.png"
# Files of the training folder that the skeleton publishes beside best.ckpt when present.
PUBLISHED = (HISTORY, CURVES, RUN_RECORD)


def epoch_metrics(trainer: L.Trainer) -> dict[str, float]:
    """Every scalar of ``trainer.callback_metrics`` under its logged name (``train/loss``, ``val/acc``)."""
    return {k: float(v) for k, v in trainer.callback_metrics.items()
            if isinstance(v, torch.Tensor) and v.numel() == 1}


class History(L.Callback):
    """Write ``<dir>/history.csv``: one row per epoch, columns ``epoch``, ``lr``, ``train/…``, ``val/…``.

    Rewritten atomically after every epoch (before ``last.ckpt``), so a resumed run keeps the
    rows of the epochs it does not repeat. At the end of training, ``learning_curves.png`` is
    drawn from it. DVC plots it with ``x: epoch``.
    """

    def __init__(self, directory: str | Path):
        self.path = Path(directory) / HISTORY
        self.rows: list[dict[str, float]] = []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Give the model summary an example input (image models with ``in_chans``/``input_size``
        hyper-parameters) so that its FLOPs column is measured instead of 0."""
        hp = getattr(pl_module, "hparams", {})
        if getattr(pl_module, "example_input_array", None) is None and "in_chans" in hp and "input_size" in hp:
            size = hp["input_size"]
            size = [size, size] if isinstance(size, int) else list(size)
            pl_module.example_input_array = torch.zeros(1, int(hp["in_chans"]), *map(int, size))

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.rows = []
        if self.path.is_file():  # a resume: keep the epochs before the restored one
            with open(self.path, newline="") as fh:
                self.rows = [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(fh)
                             if int(float(r["epoch"])) < trainer.current_epoch]

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        row = {"epoch": trainer.current_epoch, "lr": trainer.optimizers[0].param_groups[0]["lr"]}
        row.update(sorted(epoch_metrics(trainer).items()))
        self.rows.append(row)
        columns = list(dict.fromkeys(k for r in self.rows for k in r))
        columns = ["epoch", "lr"] + sorted(c for c in columns if c not in ("epoch", "lr"))
        tmp = self.path.with_name(f".{HISTORY}.tmp")
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=columns)
            w.writeheader()
            for r in self.rows:
                w.writerow({k: int(v) if k == "epoch" else f"{v:.6g}" for k, v in r.items()})
        os.replace(tmp, self.path)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and self.rows:
            from ..evaluate.plots import learning_curves_png

            work = self.path.parent  # <out parent>/.<out name>.partial
            name = f"{work.parent.name}/{work.name.lstrip('.').removesuffix('.partial')}"
            learning_curves_png(self.path, self.path.with_name(CURVES), f"learning curves: {name}")


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
        metrics = epoch_metrics(trainer)
        metrics["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
        self.tracker.log_metrics(metrics, step=trainer.current_epoch)
