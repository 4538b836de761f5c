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

    n = len(classes)
    size = max(4.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size), dpi=120)
    ConfusionMatrixDisplay(cm, display_labels=list(classes)).plot(
        ax=ax, cmap="Blues", colorbar=n <= 30, include_values=n <= 30, xticks_rotation=90 if n > 12 else 0)
    ax.set_title(title)
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
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.9 * rows + 0.6), dpi=110, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, cap in zip(axes.flat, images, captions):
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_title(cap, fontsize=8)
    if not images:
        axes.flat[0].text(0.5, 0.5, "no errors", ha="center", va="center", fontsize=12)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
