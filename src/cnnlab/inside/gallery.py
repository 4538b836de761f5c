"""Draw a layer's gallery as the course's slides do: one 3 × 3 block of top patches per unit.

Patches are drawn at one scale per layer chosen so that a deeper layer's (bigger) receptive
field gives bigger patches, and a whole gallery stays a readable size.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .units import LayerUnits

GAP = 2          # pixels between the patches of a unit
UNIT_GAP = 14    # pixels between units (room for the label)


def scale_for(field_size: int, cols: int, k: int = 9, width: int = 1600, max_scale: int = 8) -> float:
    """Display pixels per input pixel: ``max_scale`` for small fields, less where the gallery
    would grow past ``width`` pixels; never below 1 (a patch is never shrunk)."""
    per_row = cols * math.ceil(math.sqrt(k))
    return float(max(1, min(max_scale, width // max(1, per_row * field_size))))


def mosaic(lu: LayerUnits, cols: int | None = None) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """The gallery as one uint8 image, and ``(x, y, unit)`` of each unit's block (for labels)."""
    n = len(lu.units)
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    k = len(lu.patches[0])
    side = math.ceil(math.sqrt(k))
    ph, pw = lu.patches[0][0].shape[:2]
    s = scale_for(max(ph, pw), cols, k)
    ph, pw = int(ph * s), int(pw * s)
    bw, bh = side * pw + (side - 1) * GAP, side * ph + (side - 1) * GAP
    img = np.full((rows * (bh + UNIT_GAP) + UNIT_GAP, cols * (bw + UNIT_GAP) + UNIT_GAP // 2, 3), 255, np.uint8)
    anchors = []
    for u, patches in enumerate(lu.patches):
        y0 = UNIT_GAP + (u // cols) * (bh + UNIT_GAP)
        x0 = UNIT_GAP // 2 + (u % cols) * (bw + UNIT_GAP)
        anchors.append((x0, y0, lu.units[u]))
        for r, patch in enumerate(patches):
            big = np.repeat(np.repeat(patch, ph // patch.shape[0], 0), pw // patch.shape[1], 1)
            y, x = y0 + (r // side) * (ph + GAP), x0 + (r % side) * (pw + GAP)
            img[y:y + big.shape[0], x:x + big.shape[1]] = big
    return img, anchors


def draw_gallery(lu: LayerUnits, path: str | Path, title: str = "") -> Path:
    """Save the gallery of one layer as a PNG (atomically): units × top patches, labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    img, anchors = mosaic(lu)
    dpi, head, min_w = 100, 52, 480
    fig_w = max(img.shape[1], min_w)
    fig = plt.figure(figsize=(fig_w / dpi, (img.shape[0] + head) / dpi), dpi=dpi)
    ax = fig.add_axes([0, 0, img.shape[1] / fig_w, img.shape[0] / (img.shape[0] + head)])
    ax.imshow(img, interpolation="nearest")
    ax.set_axis_off()
    for x, y, unit in anchors:
        ax.text(x, y - 3, f"unit {unit}", fontsize=8, va="bottom", ha="left")
    h, w = lu.field.size
    fig.suptitle(f"{title}{lu.layer}\ntop {len(lu.patches[0])} patches of {len(lu.units)} units · "
                 f"receptive field {h}×{w} px, stride {int(lu.field.h.jump)}", fontsize=10,
                 y=1 - 4 / (img.shape[0] + head), va="top")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return Path(path)
