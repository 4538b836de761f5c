"""The detection DataModule: a prepared data set (scenes, VOC, COCO) letterboxed to one input size."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from .data import DetectionDataset, collate, read_meta
from .transforms import detector_transform


class DetectionDataModule(L.LightningDataModule):
    """Train / val / test splits of ``root`` as batches of ``(list of images, list of targets)``.

    Args:
        root: a prepared detection data set (``data/prepared/<name>``).
        input_size: side of the square network input.
        augment: training augmentation policy (:func:`.transforms.augmentation`).
        limit: keep only the first ``limit`` images of each split (tiny runs); None keeps all.
    """

    def __init__(self, root: str | Path, input_size: int, batch_size: int = 16, num_workers: int = 0,
                 augment: str = "none", limit: int | None = None):
        super().__init__()
        self.root, self.input_size, self.batch_size = Path(root), input_size, batch_size
        self.num_workers, self.augment, self.limit = num_workers, augment, limit
        self.classes = list(read_meta(root)["classes"])

    def dataset(self, split: str, train: bool = False) -> DetectionDataset:
        ds = DetectionDataset(self.root, split, detector_transform(self.input_size, self.augment if train else "none"))
        if self.limit:
            ds.records = ds.records[: self.limit]
        return ds

    def _loader(self, split: str, train: bool = False) -> DataLoader:
        return DataLoader(self.dataset(split, train), batch_size=self.batch_size, shuffle=train,
                          num_workers=self.num_workers, collate_fn=collate,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
