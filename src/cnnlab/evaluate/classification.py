"""Evaluate a classifier checkpoint on the test split of a prepared folder."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_confusion_matrix

from ..data.datamodule import ImageFolderDataModule
from ..io import atomic_path
from ..tasks.classifier import load_checkpoint
from .plots import confusion_matrix_png


@torch.inference_mode()
def predict(model: torch.nn.Module, loader: DataLoader) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities [N, K] and targets [N] over a loader."""
    probs, targets = [], []
    for x, y in loader:
        probs.append(torch.softmax(model(x), dim=1))
        targets.append(y)
    return torch.cat(probs), torch.cat(targets)


def evaluate_checkpoint(ckpt: str | Path, prepared: str | Path, out_dir: str | Path, split: str = "test",
                        batch_size: int = 256) -> dict[str, Any]:
    """Write ``metrics.json``, ``predictions.csv`` and ``confusion.png`` for ``ckpt`` into ``out_dir``.

    The checkpoint decides the input size and normalisation; the prepared folder's class list
    must match the checkpoint's.

    Raises:
        ValueError: the data set's classes differ from the checkpoint's.
    """
    model, hp = load_checkpoint(ckpt)
    dm = ImageFolderDataModule(prepared, hp["input_size"], batch_size=batch_size)
    if dm.classes != hp["classes"]:
        raise ValueError(f"{prepared}: classes {dm.classes} differ from the checkpoint's {hp['classes']} ({ckpt})")
    dm.meta["mean"], dm.meta["std"] = hp["normalization"]["mean"], hp["normalization"]["std"]
    ds = dm.split(split)
    probs, y = predict(model, DataLoader(ds, batch_size=batch_size))
    pred = probs.argmax(1)
    k = len(hp["classes"])
    metrics = {"accuracy": float(multiclass_accuracy(pred, y, num_classes=k, average="micro")),
               "n": int(len(y)), "errors": int((pred != y).sum())}
    cm = multiclass_confusion_matrix(pred, y, num_classes=k).numpy()
    classes = hp["classes"]
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        with open(tmp / "predictions.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["path", "label", "pred", "prob"])
            for path, t, p, pr in zip(ds.paths, y.tolist(), pred.tolist(), probs.max(1).values.tolist()):
                w.writerow([path, classes[t], classes[p], f"{pr:.6f}"])
        confusion_matrix_png(cm, classes, tmp / "confusion.png",
                             f"{hp['arch']} on {Path(prepared).name}/{split}: accuracy {metrics['accuracy']:.2%}")
        import json

        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics
