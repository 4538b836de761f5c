"""Pictures of detection data: boxes, class names, landmarks, masks (previews and evaluation)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

#: One colour per class id (cycled), readable on photos and textures.
PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]


def draw_objects(image: np.ndarray, boxes: Sequence[Sequence[float]], labels: Sequence[str],
                 class_ids: Sequence[int], *, landmarks: Sequence | None = None, scale: int = 3,
                 dashed: bool = False, scores: Sequence[float] | None = None, canvas: Image.Image | None = None,
                 boxes_visible: bool = True) -> Image.Image:
    """Draw boxes (with their class and score) and landmarks on an upscaled copy of ``image``.

    Args:
        image: ``[H, W, 3]`` uint8 (ignored when ``canvas`` is given).
        boxes: ``[x1, y1, x2, y2]`` in ``image`` pixels.
        scale: upscaling, so that labels stay readable on small images.
        dashed: thin white boxes without labels or landmarks (the ground truth under predictions).
        canvas: draw onto this already upscaled picture instead.
        boxes_visible: False draws only the landmarks.
    """
    if canvas is None:
        h, w = image.shape[:2]
        canvas = Image.fromarray(image).resize((w * scale, h * scale), Image.NEAREST)
    draw = ImageDraw.Draw(canvas)
    for i, (box, name, cid) in enumerate(zip(boxes, labels, class_ids)):
        colour = PALETTE[int(cid) % len(PALETTE)]
        marks = None if landmarks is None else landmarks[i]
        if marks is not None and not np.isnan(np.asarray(marks, dtype=float)).any():
            for x, y in (np.asarray(marks, dtype=float) + 0.5) * scale:  # pixel index → picture pixels
                draw.ellipse([x - 2.5, y - 2.5, x + 2.5, y + 2.5], fill=(0, 255, 0), outline=(0, 0, 0))
        if not boxes_visible:
            continue
        x1, y1, x2, y2 = (float(v) * scale for v in box)
        draw.rectangle([x1, y1, x2 - 1, y2 - 1], outline=(255, 255, 255) if dashed else colour,
                       width=1 if dashed else 2)
        if dashed:  # the ground truth under predictions: box only, the prediction carries the label
            continue
        text = name if scores is None else f"{name} {scores[i]:.2f}"
        ty = max(0.0, y1 - 11)
        draw.rectangle([x1, ty, x1 + 6 * len(text) + 2, ty + 10], fill=colour)
        draw.text((x1 + 1, ty - 1), text, fill=(0, 0, 0))
    return canvas


def colour_mask(mask: np.ndarray) -> np.ndarray:
    """A semantic mask (0 = background, 1 + class id) as an RGB picture."""
    lut = np.zeros((256, 3), np.uint8)
    for k in range(1, 256):
        lut[k] = PALETTE[(k - 1) % len(PALETTE)]
    return lut[mask]


def grid(tiles: Sequence[Image.Image], cols: int, pad: int = 4) -> Image.Image:
    """Tiles of equal size on a white grid."""
    w, h = tiles[0].size
    rows = -(-len(tiles) // cols)
    out = Image.new("RGB", (cols * (w + pad) + pad, rows * (h + pad) + pad), (255, 255, 255))
    for k, t in enumerate(tiles):
        out.paste(t, (pad + (k % cols) * (w + pad), pad + (k // cols) * (h + pad)))
    return out


def draw_preview(root: str | Path, split: str, out: str | Path, n: int = 6, scale: int = 3) -> Path:
    """``preview.png``: ``n`` scenes with boxes, classes and landmarks, each above its mask."""
    from .data import read_split

    root = Path(root)
    records = read_split(root, split)[:n]
    tiles = []
    for rec in records:
        img = np.asarray(Image.open(root / split / rec["file"]).convert("RGB"))
        objs = rec["objects"]
        tiles.append(draw_objects(img, [o["box"] for o in objs], [o["class"] for o in objs],
                                  [o["class_id"] for o in objs], landmarks=[o["landmarks"] for o in objs], scale=scale))
    masks = []
    for rec in records:
        mpath = root / split / "masks" / f"{rec['id']}.png"
        if mpath.is_file():
            m = colour_mask(np.asarray(Image.open(mpath)))
            masks.append(Image.fromarray(m).resize(tiles[0].size, Image.NEAREST))
    pic = grid(tiles + masks, cols=len(tiles))
    pic.save(out)
    return Path(out)
