"""Readable evaluation plots (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def confusion_matrix_png(cm: np.ndarray, classes: Sequence[str], path: str | Path, title: str) -> Path:
    """Save a confusion matrix (rows: true class, columns: predicted) with counts in each cell."""
    from sklearn.metrics import ConfusionMatrixDisplay

    from matplotlib.ticker import MaxNLocator

    n = len(classes)
    size = max(4.5, 0.45 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size + 0.8, size), dpi=120)
    disp = ConfusionMatrixDisplay(cm, display_labels=list(classes)).plot(
        ax=ax, cmap="Blues", colorbar=False, include_values=n <= 30, xticks_rotation=90 if n > 12 else 0)
    if n <= 30:  # counts: integer ticks; the bar beside the matrix, never over the title
        bar = fig.colorbar(disp.im_, ax=ax, fraction=0.046, pad=0.04)
        bar.locator = MaxNLocator(integer=True)
        bar.update_ticks()
    fig.suptitle(title, fontsize=10, wrap=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def error_gallery_png(images: Sequence[np.ndarray], captions: Sequence[str], path: str | Path, title: str,
                      cols: int = 8) -> Path:
    """Save a grid of (misclassified) images, each captioned "true → predicted (p)".

    Args:
        images: HxW (grey) or HxWx3 arrays in [0, 1].
        captions: one caption per image.
    """
    n = max(len(images), 1)
    cols = min(cols, n)  # a few errors: a narrow canvas, not a mostly blank wide one
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(max(1.6 * cols, 4.0), 1.9 * rows + 0.7), dpi=110, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, cap in zip(axes.flat, images, captions):
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_title(cap, fontsize=8)
    if not images:
        axes.flat[0].text(0.5, 0.5, "no errors", ha="center", va="center", fontsize=12)
    fig.suptitle(title, fontsize=9, wrap=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def learning_curves_png(history_csv: str | Path, path: str | Path, title: str | None = None) -> Path:
    """Draw ``history.csv`` (epoch, train/…, val/… columns) as learning curves, one panel per
    quantity (loss first, then accuracy, then the rest), train and val on the same axes."""
    import csv

    with open(history_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    columns = [c for c in (rows[0].keys() if rows else []) if "/" in c]
    quantities = list(dict.fromkeys(c.split("/", 1)[1] for c in columns))
    quantities.sort(key=lambda q: (q != "loss", q != "acc", q))
    quantities = quantities[:6] or ["loss"]
    fig, axes = plt.subplots(1, len(quantities), figsize=(3.6 * len(quantities), 3.2), dpi=110, squeeze=False)
    epochs = [int(float(r["epoch"])) for r in rows]
    for ax, q in zip(axes.flat, quantities):
        for split, style in (("train", "-o"), ("val", "-s")):
            col = f"{split}/{q}"
            pts = [(e, float(r[col])) for e, r in zip(epochs, rows) if r.get(col) not in (None, "")]
            if pts:
                ax.plot(*zip(*pts), style, markersize=3, label=split)
        ax.set_title(q)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title or f"learning curves ({Path(history_csv).parent.name})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
