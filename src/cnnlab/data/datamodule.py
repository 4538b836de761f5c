"""LightningDataModule over a prepared image folder (see ``cnnlab.data.prepare``)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Callable, Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset
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


class ImageFolderDataModule(L.LightningDataModule):
    """Train/val/test loaders for a prepared folder.

    Args:
        root: prepared folder (``data/prepared/<name>``).
        image_size: (H, W) the model expects.
        batch_size: per-step batch size.
        num_workers: DataLoader worker processes (augmentation runs in them).
        train_transform: optional augmentation applied to uint8 tensors before the eval transform.
    """

    def __init__(self, root: str | Path, image_size: tuple[int, int], batch_size: int = 64, num_workers: int = 0,
                 train_transform: Callable | None = None):
        super().__init__()
        self.root = Path(root)
        self.meta, self.rows = read_prepared(self.root)
        self.classes: list[str] = self.meta["classes"]
        self.channels: int = self.meta["channels"]
        self.image_size = tuple(image_size)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.train_transform = train_transform
        self._splits: dict[str, ImageSplit] = {}

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def normalization(self) -> dict[str, list[float]]:
        return {"mean": self.meta["mean"], "std": self.meta["std"]}

    def split(self, name: str) -> ImageSplit:
        """The dataset for ``name`` ("train", "val" or "test"), built once."""
        if name not in self._splits:
            rows = [r for r in self.rows if r["split"] == name]
            if not rows:
                raise DataError(f"{self.root}/manifest.csv: the {name!r} split is empty")
            tf = eval_transform(self.image_size, self.meta["mean"], self.meta["std"])
            if name == "train" and self.train_transform is not None:
                tf = v2.Compose([self.train_transform, tf])
            self._splits[name] = ImageSplit(self.root, rows, self.classes, self.channels, tf)
        return self._splits[name]

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        return DataLoader(self.split(name), batch_size=self.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)
