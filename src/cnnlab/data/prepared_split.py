"""Reading a prepared image folder without Lightning: its metadata, one split in memory, and the
evaluation transform. :mod:`cnnlab.data.datamodule` builds its loaders on these; stages that only
read data (evaluation, face encoding, augmentation) import this module and skip Lightning's
import cost.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from .images import DataError, load_image


def read_prepared(root: str | Path) -> tuple[dict, list[dict]]:
    """Read ``dataset.json`` and ``manifest.csv`` of a prepared folder.

    Raises:
        DataError: the folder is not a prepared data set (names the missing file).
    """
    root = Path(root)
    for name in ("dataset.json", "manifest.csv"):
        if not (root / name).is_file():
            raise DataError(f"{root / name} not found: run the prepare stage for this data set first")
    meta = json.loads((root / "dataset.json").read_text())
    with open(root / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return meta, rows


class ImageSplit(Dataset):
    """One split of a prepared folder, decoded once into memory as uint8 tensors.

    Args:
        root: the prepared folder.
        rows: its manifest rows for this split.
        classes: all class names (index = label id).
        channels: 1 (grey) or 3 (RGB).
        transform: applied to each uint8 CHW tensor; returns a float tensor.
    """

    def __init__(self, root: Path, rows: Sequence[dict], classes: Sequence[str], channels: int,
                 transform: Callable[[torch.Tensor], torch.Tensor]):
        index = {c: i for i, c in enumerate(classes)}
        mode = "L" if channels == 1 else "RGB"
        self.paths = [r["path"] for r in rows]
        self.targets = torch.tensor([index[r["label"]] for r in rows], dtype=torch.long)
        self.images = [v2.functional.pil_to_tensor(load_image(root / p, mode)) for p in self.paths]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[i]), self.targets[i]


def eval_transform(size: tuple[int, int], mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """Resize (only if needed), scale to [0, 1] and normalise with the training set's statistics."""
    return v2.Compose([v2.Resize(list(size), antialias=True), v2.ToDtype(torch.float32, scale=True),
                       v2.Normalize(list(mean), list(std))])
