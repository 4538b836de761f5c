"""Pictures of segmentations: mask overlays, the best/worst grid, the confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from ..detect.preview import PALETTE, colour_mask  # noqa: E402
from .data import IGNORE  # noqa: E402


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.75) -> np.ndarray:
    """``image`` ([H, W, 3] uint8), greyed and dimmed, with every non-background class painted in its colour.

    The image is greyed so that its own colours are not mistaken for classes; ignored pixels are grey.
    """
    colours = colour_mask(np.where(mask == IGNORE, 0, mask).astype(np.uint8)).astype(np.float32)
    grey = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    out = np.repeat(0.35 * grey[..., None] + 40, 3, axis=-1)
    painted = (mask > 0) & (mask != IGNORE)
    out[painted] = (1 - alpha) * out[painted] + alpha * colours[painted]
    out[mask == IGNORE] = 128
    return out.clip(0, 255).astype(np.uint8)


def _legend(fig: plt.Figure, classes: Sequence[str]) -> None:
    handles = [Patch(facecolor=np.array(PALETTE[(k - 1) % len(PALETTE)]) / 255, label=name)
               for k, name in enumerate(classes) if k > 0]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), frameon=False, fontsize=9)


def plot_overlays(best: Sequence[tuple], worst: Sequence[tuple], classes: Sequence[str], out: str | Path) -> Path:
    """Rows of image | truth | prediction for the best and the worst test images (by per-image mIoU).

    ``best`` and ``worst`` hold ``(score, id, image [3, H, W] uint8, truth [H, W], pred [H, W])``.
    """
    rows = [("best", s) for s in best] + [("worst", s) for s in worst]
    fig, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.5 * len(rows) + 0.6), squeeze=False)
    for ax_row, (kind, (score, name, image, truth, pred)) in zip(axes, rows):
        img = image.permute(1, 2, 0).numpy()
        for ax, pic, title in zip(ax_row, (img, overlay(img, truth.numpy()), overlay(img, pred.numpy())),
                                  (f"{kind}: {name}", "truth", f"prediction (mIoU {score:.2f})")):
            ax.imshow(pic, interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    _legend(fig, classes)
    fig.tight_layout(rect=(0, 0.5 / (2.5 * len(rows) + 0.6), 1, 1))
    fig.savefig(out, dpi=100, format="png")
    plt.close(fig)
    return Path(out)


def plot_confusion(confusion: np.ndarray, classes: Sequence[str], out: str | Path) -> Path:
    """The pixel confusion matrix, each row normalised to the truth's pixels (numbers: percent)."""
    rows = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.1 * n + 2, 1.0 * n + 1.5))
    im = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{100 * rows[i, j]:.1f}", ha="center", va="center", fontsize=8,
                    color="white" if rows[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("truth")
    ax.set_title("pixel confusion (% of each true class)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(out, dpi=100, format="png")
    plt.close(fig)
    return Path(out)
