"""Evaluate a classifier checkpoint on one split of a prepared folder.

Writes (atomically, as one folder)::

    metrics.json      accuracy, macro precision/recall/F1, latency per image, model size
    per_class.csv     precision, recall, F1 and support of every class
    predictions.csv   path, actual, predicted, prob (one row per image; a DVC confusion plot)
    confusion.png     confusion matrix
    errors.png        the misclassified images (error analysis), "true → pred (p)"
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

from ..data.datamodule import ImageFolderDataModule
from ..io import atomic_path
from ..tasks.classifier import load_checkpoint
from .cost import latency_ms, model_bytes
from .plots import confusion_matrix_png, error_gallery_png

MAX_ERRORS_SHOWN = 48


@torch.inference_mode()
def predict(model: torch.nn.Module, loader: DataLoader) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities [N, K] and targets [N] over a loader."""
    probs, targets = [], []
    for x, y in loader:
        probs.append(torch.softmax(model(x), dim=1))
        targets.append(y)
    return torch.cat(probs), torch.cat(targets)


def classification_metrics(pred: torch.Tensor, y: torch.Tensor, k: int) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """Overall metrics (accuracy, macro P/R/F1) and per-class tensors, all from torchmetrics."""
    per = {name: fn(pred, y, num_classes=k, average="none")
           for name, fn in (("precision", multiclass_precision), ("recall", multiclass_recall),
                            ("f1", multiclass_f1_score))}
    per["support"] = torch.bincount(y, minlength=k)
    overall = {"accuracy": float(multiclass_accuracy(pred, y, num_classes=k, average="micro"))}
    overall.update({f"macro_{name}": float(fn(pred, y, num_classes=k, average="macro"))
                    for name, fn in (("precision", multiclass_precision), ("recall", multiclass_recall),
                                     ("f1", multiclass_f1_score))})
    return overall, per


def evaluate_checkpoint(ckpt: str | Path, prepared: str | Path, out_dir: str | Path, split: str = "test",
                        batch_size: int = 256, latency_repeats: int = 20,
                        also: tuple[str, ...] = ("val",)) -> dict[str, Any]:
    """Evaluate ``ckpt`` on ``split`` and write the evaluation folder ``out_dir``.

    The checkpoint decides the input size and normalisation; the prepared folder's class list
    must match the checkpoint's. Latency is the median over ``latency_repeats`` single-image
    forward passes on this machine's CPU (batch 1: what a user of the model waits for).
    Each split of ``also`` is scored too (``<split>_accuracy``, ``<split>_n``, ``<split>_errors``):
    model selection reads the validation figures, never the test ones.

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
    classes, k = hp["classes"], len(hp["classes"])
    metrics, per = classification_metrics(pred, y, k)
    metrics.update(n=int(len(y)), errors=int((pred != y).sum()),
                   latency_ms_per_image=latency_ms(model, ds[0][0][None], latency_repeats),
                   num_params=sum(p.numel() for p in model.parameters()),
                   model_size_mb=model_bytes(model) / 2 ** 20)
    for other in also:
        o_probs, o_y = predict(model, DataLoader(dm.split(other), batch_size=batch_size))
        o_pred = o_probs.argmax(1)
        metrics.update({f"{other}_accuracy": float((o_pred == o_y).float().mean()), f"{other}_n": int(len(o_y)),
                        f"{other}_errors": int((o_pred != o_y).sum())})
    wrong = (pred != y).nonzero().flatten()[:MAX_ERRORS_SHOWN].tolist()
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        with open(tmp / "predictions.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["path", "actual", "predicted", "prob"])  # a DVC confusion plot: x=actual, y=predicted
            for path, t, p, pr in zip(ds.paths, y.tolist(), pred.tolist(), probs.max(1).values.tolist()):
                w.writerow([path, classes[t], classes[p], f"{pr:.6f}"])
        with open(tmp / "per_class.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["class", "precision", "recall", "f1", "support"])
            for i, c in enumerate(classes):
                w.writerow([c, *(f"{float(per[m][i]):.4f}" for m in ("precision", "recall", "f1")), int(per["support"][i])])
        title = f"{hp['arch']} on {Path(prepared).name}/{split}"
        confusion_matrix_png(multiclass_confusion_matrix(pred, y, num_classes=k).numpy(), classes,
                             tmp / "confusion.png", f"{title}: accuracy {metrics['accuracy']:.2%}")
        images = [(ds.images[i].float() / 255).permute(1, 2, 0).squeeze(-1).numpy() for i in wrong]
        captions = [f"{classes[y[i]]} → {classes[pred[i]]} ({probs[i].max():.2f})" for i in wrong]
        error_gallery_png(images, captions, tmp / "errors.png",
                          f"{title}: {metrics['errors']} of {metrics['n']} misclassified (first {len(wrong)})")
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics
