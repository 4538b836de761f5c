"""The per-epoch log every training task publishes: history.csv (DVC plots, x = epoch) and its picture."""

from __future__ import annotations

import csv

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from cnnlab.tasks.callbacks import CURVES, HISTORY, History


class _Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(4, 2)

    def training_step(self, batch, _):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("train/loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        out = self.net(x)
        self.log("val/loss", torch.nn.functional.cross_entropy(out, y))
        self.log("val/acc", (out.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_history_csv_and_learning_curves(tmp_path):
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(32, 4), torch.randint(0, 2, (32,)))
    trainer = L.Trainer(max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[History(tmp_path)], default_root_dir=tmp_path)
    trainer.fit(_Tiny(), DataLoader(data, batch_size=8), DataLoader(data, batch_size=8))
    rows = list(csv.DictReader(open(tmp_path / HISTORY)))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert {"epoch", "lr", "train/loss", "val/loss", "val/acc"} == set(rows[0])
    assert float(rows[-1]["val/loss"]) == float(trainer.callback_metrics["val/loss"]) or \
        abs(float(rows[-1]["val/loss"]) - float(trainer.callback_metrics["val/loss"])) < 1e-5
    assert (tmp_path / CURVES).stat().st_size > 10_000  # a drawn picture, not an empty canvas

    # a resumed run keeps the rows of the epochs before the one it restarts at
    cb = History(tmp_path)
    trainer.fit_loop.epoch_progress.current.completed = 2  # as if restored at epoch 2
    cb.on_fit_start(trainer, None)
    assert [int(r["epoch"]) for r in cb.rows] == [0, 1]
