"""Materialise k augmented variants per training image as a prepared-style folder.

Output layout (readable by ``ImageFolderDataModule`` like any prepared folder)::

    <out>/train/<label>/<name>.png          the original
    <out>/train/<label>/<name>_aug<j>.png   variant j = 1..k
    <out>/{val,test}/<label>/<name>.png     copied unchanged (never augmented)
    <out>/manifest.csv                      path,label,split
    <out>/dataset.json                      the prepared one, with train counts and mean/std
                                            recomputed over the augmented train split, plus an
                                            ``augmented`` entry (source, policy, k, seed)
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torchvision.transforms import v2

from ..data.prepared_split import read_prepared
from ..data.images import load_image


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """A policy's output as uint8 (float outputs are taken to be in [0, 1])."""
    if image.dtype == torch.uint8:
        return image
    return (image.float() * 255.0).round().clamp(0, 255).to(torch.uint8)


def save_png(image: torch.Tensor, path: Path) -> None:
    """Save a uint8 CHW tensor (1 or 3 channels) as a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    v2.functional.to_pil_image(image).save(path)


class _ChannelMoments:
    """Running per-channel mean and std of uint8 images, in [0, 1] units (as ``prepare`` computes them)."""

    def __init__(self, channels: int):
        self.sum, self.sq, self.n = np.zeros(channels), np.zeros(channels), 0

    def add(self, image: torch.Tensor) -> None:
        x = image.numpy().astype(np.float64).reshape(image.shape[0], -1) / 255.0
        self.sum += x.sum(1)
        self.sq += (x ** 2).sum(1)
        self.n += x.shape[1]

    def mean_std(self) -> tuple[list[float], list[float]]:
        mean = self.sum / max(self.n, 1)
        std = np.sqrt(np.maximum(self.sq / max(self.n, 1) - mean ** 2, 1e-12))
        return [round(float(m), 6) for m in mean], [round(float(s), 6) for s in std]


def materialise(prepared: str | Path, out: str | Path, policy: Callable[[torch.Tensor], torch.Tensor], k: int,
                seed: int = 0, policy_name: str | None = None) -> dict:
    """Write the originals plus ``k`` variants of every training image into ``out``.

    Args:
        prepared: a prepared folder (``data/prepared/<name>``).
        out: the output folder (created if missing; the caller makes the write atomic).
        policy: the augmentation, called on each uint8 CHW image.
        k: variants per training image (≥ 1).
        seed: seeds torch's generator first, so the same inputs give the same variants.
        policy_name: recorded in ``dataset.json``.

    Returns:
        The new dataset.json content.
    """
    if k < 1:
        raise ValueError(f"augment_k must be >= 1 to materialise variants, got {k}")
    prepared, out = Path(prepared), Path(out)
    meta, rows = read_prepared(prepared)
    mode = "L" if meta["channels"] == 1 else "RGB"
    moments, sizes, new_rows = _ChannelMoments(meta["channels"]), set(), []
    torch.manual_seed(seed)
    for row in rows:
        rel = Path(row["path"])
        if row["split"] != "train":
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(prepared / rel, out / rel)
            new_rows.append((row["path"], row["label"], row["split"]))
            continue
        image = v2.functional.pil_to_tensor(load_image(prepared / rel, mode))
        for j in range(k + 1):
            variant = image if j == 0 else to_uint8(policy(image))
            vrel = rel if j == 0 else rel.with_name(f"{rel.stem}_aug{j}.png")
            save_png(variant, out / vrel)
            new_rows.append((vrel.as_posix(), row["label"], "train"))
            moments.add(variant)
            sizes.add(tuple(variant.shape[-2:]))
    with open(out / "manifest.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "split"])
        writer.writerows(new_rows)
    mean, std = moments.mean_std()
    counts = {**meta["counts"], "train": sum(r[2] == "train" for r in new_rows)}
    same_size = len(sizes) == 1 and list(sizes.pop()) == meta["image_size"]
    new_meta = {**meta, "counts": counts, "mean": mean, "std": std,
                "image_size": meta["image_size"] if same_size else None,
                "augmented": {"source": str(prepared), "policy": policy_name, "k": k, "seed": seed}}
    (out / "dataset.json").write_text(json.dumps(new_meta, indent=2) + "\n")
    return new_meta
