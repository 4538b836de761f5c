"""Detection metrics with COCO semantics: mAP@0.5, mAP@[.5:.95], per-class AP, PR curves.

Through torchmetrics' ``MeanAveragePrecision`` on the pycocotools backend (``pycocotools`` is
pinned in the requirements). VOC's ``difficult`` objects are passed as COCO ``iscrowd``: a
detection that matches one is neither a true nor a false positive, and a missed one is no false
negative, as VOC's devkit does. (COCO matches a crowd region by intersection over the
detection's area rather than IoU; for the boxes of a difficult object the two rarely differ.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torchmetrics.detection import MeanAveragePrecision

RECALLS = np.linspace(0, 1, 101)  # COCO's 101 recall points


def metric() -> MeanAveragePrecision:
    """A fresh mAP metric: xyxy boxes, per-class results, precision curves kept."""
    return MeanAveragePrecision(box_format="xyxy", iou_type="bbox", class_metrics=True, extended_summary=True,
                                backend="pycocotools")


def coco_target(target: dict) -> dict[str, torch.Tensor]:
    """A target of the data contract → torchmetrics' (``difficult`` → ``iscrowd``)."""
    n = len(target["labels"])
    crowd = target.get("difficult", torch.zeros(n, dtype=torch.bool))
    return {"boxes": torch.as_tensor(target["boxes"]).float().reshape(-1, 4), "labels": target["labels"].long(),
            "iscrowd": torch.as_tensor(crowd).long()}


def summarise(result: dict, classes: Sequence[str]) -> dict:
    """The numbers of a computed metric: ``map_50``, ``map_50_95``, ``map_75``, ``ap_50``/``ap`` per class.

    Per-class AP@0.5 comes from COCO's precision array at IoU 0.5 (all areas, 100 detections),
    averaged over the 101 recall points; a class absent from the ground truth gets ``None``.
    """
    prec = result["precision"].numpy()  # [T, R, K, A, M]; K over result["classes"]
    present = [int(c) for c in torch.atleast_1d(result["classes"])]
    ap50, ap = {}, {}
    per_class = torch.atleast_1d(result["map_per_class"])
    for k, c in enumerate(present):
        if c < 0 or c >= len(classes):
            continue
        p = prec[0, :, k, 0, -1]
        ap50[classes[c]] = float(p[p > -1].mean()) if (p > -1).any() else None
        ap[classes[c]] = float(per_class[k]) if float(per_class[k]) >= 0 else None
    for name in classes:
        ap50.setdefault(name, None)
        ap.setdefault(name, None)
    return {"map_50": max(float(result["map_50"]), 0.0), "map_50_95": max(float(result["map"]), 0.0),
            "map_75": max(float(result["map_75"]), 0.0), "ap_50_per_class": ap50, "ap_per_class": ap}


def pr_curves(result: dict, classes: Sequence[str]) -> dict[str, np.ndarray]:
    """Precision at COCO's 101 recall points, IoU 0.5, per class present in the ground truth."""
    prec = result["precision"].numpy()
    curves = {}
    for k, c in enumerate(int(c) for c in torch.atleast_1d(result["classes"])):
        if 0 <= c < len(classes):
            curves[classes[c]] = prec[0, :, k, 0, -1]
    return curves


def plot_pr(curves: dict[str, np.ndarray], ap50: dict[str, float | None], path: str | Path, title: str) -> None:
    """PR curves of every class (IoU 0.5) in one figure, written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    fig, ax = plt.subplots(figsize=(6, 5), dpi=110)
    for name, p in curves.items():
        ok = p > -1
        ax.plot(RECALLS[ok], p[ok], lw=2, label=f"{name} (AP@0.5 {ap50.get(name) or 0:.3f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.02), title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
