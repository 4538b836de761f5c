"""Evaluating a segmenter on a test split: torchmetrics scores, confusion matrix, overlays, latency.

Predictions are made at the training size and resampled (bilinear logits) to each image's own
size, so the scores are against the original masks. Scores, all over the pixels whose mask value
is not :data:`~cnnlab.segment.data.IGNORE`:

- ``miou``: mean over the classes of the intersection over union (torchmetrics
  ``MulticlassJaccardIndex``), background included, as in Pascal VOC; ``iou`` per class;
- ``dice``: mean over the classes of 2|P∩T| / (|P| + |T|) (``MulticlassF1Score``, = Dice per class);
- ``pixel_acc``: the fraction of pixels labelled right (``MulticlassAccuracy``, micro);
- ``confusion``: pixel counts, rows = truth, columns = prediction.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torchvision import tv_tensors
from torchmetrics.classification import (MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score,
                                         MulticlassJaccardIndex)

from ..io import atomic_path, write_metrics
from .data import IGNORE, MaskDataset, eval_transforms
from .module import load_segmenter, predict_logits
from .plots import plot_confusion, plot_overlays


@torch.no_grad()
def predict(model: torch.nn.Module, image: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Class indices ``[H, W]`` for one uint8 ``[3, H, W]`` image, predicted at ``size`` and resampled back."""
    x = eval_transforms(size)(tv_tensors.Image(image)).unsqueeze(0)
    logits = predict_logits(model, x)
    if logits.shape[-2:] != image.shape[-2:]:
        logits = F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=False)
    return logits.argmax(1)[0]


def _image_iou(pred: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean IoU of one image over the classes in its truth or prediction (for best/worst ranking)."""
    valid = truth != IGNORE
    p, t = pred[valid], truth[valid]
    ious = [((p == c) & (t == c)).sum().item() / ((p == c) | (t == c)).sum().item()
            for c in torch.unique(torch.cat([p, t])).tolist()]
    return float(np.mean(ious)) if ious else 1.0


@torch.no_grad()
def latency_ms(model: torch.nn.Module, size: Sequence[int], repeats: int = 10) -> float:
    """Median milliseconds of one forward pass on one image at ``size`` (after two warm-up passes)."""
    x = torch.rand(1, 3, *size)
    times = []
    for i in range(repeats + 2):
        t0 = time.perf_counter()
        predict_logits(model, x)
        if i >= 2:
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def evaluate_segmenter(ckpt: str | Path, root: str | Path, out: str | Path, split: str = "test",
                       n_show: int = 4) -> dict[str, Any]:
    """Score ``ckpt`` on ``root``'s ``split`` and write ``out/{metrics.json, details.json, confusion.png, overlays.png}``.

    Returns:
        The metrics (in ``details.json``; their top-level numbers in ``metrics.json``): ``miou``, ``dice``, ``pixel_acc``, ``iou`` (per
        class name), ``confusion``, ``ms_per_image``, ``best``/``worst`` image ids and ``n_images``.
    """
    model, hp = load_segmenter(ckpt)
    classes, size = list(hp["classes"]), list(hp["image_size"])
    n = len(classes)
    metrics = {"iou": MulticlassJaccardIndex(n, average="none", ignore_index=IGNORE),
               "dice": MulticlassF1Score(n, average="none", ignore_index=IGNORE),
               "acc": MulticlassAccuracy(n, average="micro", ignore_index=IGNORE),
               "confusion": MulticlassConfusionMatrix(n, ignore_index=IGNORE)}
    ds = MaskDataset(root, split)
    scored = []
    for i in range(len(ds)):
        image, mask = ds.load(i)
        truth = mask.long()
        top = int(torch.where(truth == IGNORE, 0, truth).max())
        if top >= n:
            raise ValueError(f"{Path(root) / split / 'masks' / ds.ids[i]}.png: class {top} unknown to "
                             f"{ckpt} ({n} classes)")
        pred = predict(model, image, size)
        for m in metrics.values():
            m.update(pred.flatten(), truth.flatten())
        scored.append((_image_iou(pred, truth), ds.ids[i], image, truth, pred))
    iou, dice = metrics["iou"].compute(), metrics["dice"].compute()
    confusion = metrics["confusion"].compute()
    present = confusion.sum(1) + confusion.sum(0) > 0  # classes absent from truth and prediction: no score
    result = {
        "miou": float(iou[present].mean()), "dice": float(dice[present].mean()),
        "pixel_acc": float(metrics["acc"].compute()),
        "iou": {c: float(v) for c, v, ok in zip(classes, iou, present) if ok},
        "dice_per_class": {c: float(v) for c, v, ok in zip(classes, dice, present) if ok},
        "confusion": confusion.tolist(), "classes": classes, "n_images": len(ds),
        "ms_per_image": latency_ms(model, size), "threads": torch.get_num_threads(), "size": size,
    }
    scored.sort(key=lambda s: s[0])
    k = min(n_show, (len(scored) + 1) // 2)
    best, worst = scored[::-1][:k], scored[:k]
    result["best"] = {s[1]: round(s[0], 4) for s in best}
    result["worst"] = {s[1]: round(s[0], 4) for s in worst}
    out = Path(out)
    with atomic_path(out / "confusion.png") as tmp:
        plot_confusion(confusion.numpy(), classes, tmp)
    with atomic_path(out / "overlays.png") as tmp:
        plot_overlays(best, worst, classes, tmp)
    write_metrics(out, result)   # per-class, confusion, best/worst: details.json
    return result
