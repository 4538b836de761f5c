"""``cnnlab segment IMAGE... --model CKPT``: predicted masks as indexed PNGs, and overlay pictures."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from ..data.images import load_image
from ..detect.preview import colour_mask
from ..io import atomic_path
from .plots import overlay


def indexed_png(mask: np.ndarray) -> Image.Image:
    """A "P"-mode PNG whose pixel values are the class indices and whose palette is the class colours."""
    img = Image.fromarray(mask.astype(np.uint8), "P")
    lut = colour_mask(np.arange(256, dtype=np.uint8))
    img.putpalette(lut.reshape(-1).tolist())
    return img


def segment_images(images: Sequence[str | Path], ckpt: str | Path, out_dir: str | Path | None = None
                   ) -> list[tuple[Path, Path, dict[str, float]]]:
    """Segment each image; write ``<stem>.mask.png`` and ``<stem>.overlay.png`` (beside it, or in ``out_dir``).

    Returns:
        Per image: the mask path, the overlay path and each predicted class's share of the pixels.

    Raises:
        DataError: an image cannot be read (before anything is written for it).
    """
    from .evaluate import predict
    from .module import load_segmenter

    model, hp = load_segmenter(ckpt)
    classes, size = hp["classes"], hp["image_size"]
    results = []
    with torch.inference_mode():  # scoped: a process-wide switch would leak into the caller
        for path in map(Path, images):
            rgb = np.asarray(load_image(path, "RGB"))
            pred = predict(model, torch.from_numpy(rgb.copy()).permute(2, 0, 1), size).numpy()
            folder = Path(out_dir) if out_dir else path.parent
            mask_path, over_path = folder / f"{path.stem}.mask.png", folder / f"{path.stem}.overlay.png"
            with atomic_path(mask_path) as tmp:
                indexed_png(pred).save(tmp, format="PNG")
            with atomic_path(over_path) as tmp:
                Image.fromarray(overlay(rgb, pred)).save(tmp, format="PNG")
            counts = np.bincount(pred.ravel(), minlength=len(classes)) / pred.size
            results.append((mask_path, over_path, {c: float(f) for c, f in zip(classes, counts) if f > 0}))
    return results
