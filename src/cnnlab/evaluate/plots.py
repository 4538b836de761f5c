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
