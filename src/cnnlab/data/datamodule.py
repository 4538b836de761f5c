"""LightningDataModule over a prepared image folder (see ``cnnlab.data.prepare``).

Two ways to feed the model. By default DataLoader workers decode nothing (the split is decoded
once into memory) but augment and normalise each image on the CPU. With ``on_device=True``
(``trainer=gpu``) the whole uint8 split is moved to the accelerator once; the loaders only
sample indices, and :meth:`ImageFolderDataModule.on_after_batch_transfer` gathers, augments
(:class:`~cnnlab.augment.gpu.BatchAugment`) and normalises each batch there.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable, Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from ..augment.gpu import BatchAugment, to_unit_float
from .images import DataError  # noqa: F401  (re-exported)
from .seeded import eval_loader, seeded_loader
from .prepared_split import ImageSplit, eval_transform, read_prepared  # noqa: F401  (re-exported)


class _Indices(Dataset):
    """Item ``i`` is ``i``: with the split held on the device, a loader only samples indices."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i

    def __getitems__(self, indices: list[int]) -> list[int]:
        return indices  # one call per batch instead of one per sample


def _index_batch(split: str, indices: list[int]) -> tuple[str, torch.Tensor]:
    """Collate: the batch names its split, so the device-side gather knows which images to read."""
    return split, torch.tensor(indices)


class ImageFolderDataModule(L.LightningDataModule):
    """Train/val/test loaders for a prepared folder.

    Args:
        root: prepared folder (``data/prepared/<name>``).
        image_size: (H, W) the model expects.
        batch_size: per-step batch size.
        num_workers: DataLoader worker processes (augmentation runs in them); unused on the device.
        train_transform: optional augmentation applied to uint8 tensors before the eval transform.
        on_device: hold each split on the accelerator (uint8, resized once) and build batches there.
        batch_augment: augmentation of training batches on the device (needs ``on_device``).
        channels_last: hand batches to the model in channels_last memory format.

    Raises:
        ValueError: ``batch_augment`` without ``on_device``, or ``train_transform`` with it (a
            per-image CPU policy cannot run on device-resident batches).
    """

    def __init__(self, root: str | Path, image_size: tuple[int, int], batch_size: int = 64, num_workers: int = 0,
                 train_transform: Callable | None = None, *, on_device: bool = False,
                 batch_augment: BatchAugment | None = None, channels_last: bool = False):
        super().__init__()
        if batch_augment is not None and not on_device:
            raise ValueError("batch_augment runs on device-resident batches: it needs on_device=True")
        if train_transform is not None and on_device:
            raise ValueError("train_transform is a per-image CPU policy; with on_device=True use batch_augment")
        self.root = Path(root)
        self.meta, self.rows = read_prepared(self.root)
        self.classes: list[str] = self.meta["classes"]
        self.channels: int = self.meta["channels"]
        self.image_size = tuple(image_size)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.train_transform = train_transform
        self.on_device = on_device
        self.batch_augment = batch_augment
        self.channels_last = channels_last
        self._splits: dict[str, ImageSplit] = {}
        self._resident: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._stats: tuple[torch.Tensor, torch.Tensor] | None = None
        self._generator: torch.Generator | None = None

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
        if self.on_device:
            # Pinned index batches go to the GPU without a stream sync (Lightning copies non_blocking).
            return DataLoader(_Indices(len(self.split(name))), batch_size=self.batch_size, shuffle=shuffle,
                              collate_fn=functools.partial(_index_batch, name), pin_memory=torch.cuda.is_available())
        # Per-sample seeds drawn in this process (whose generators checkpoints restore): a resumed
        # run draws the augmentation the uninterrupted one drew, whatever the workers do.
        if not shuffle:
            return eval_loader(self.split(name), self.batch_size, self.num_workers)
        return seeded_loader(self.split(name), batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers)

    def resident(self, name: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Split ``name`` on ``device``: uint8 images [N, C, H, W] (resized as the eval transform
        does) and labels [N]; moved once."""
        if name not in self._resident:
            split = self.split(name)
            size = list(self.image_size)
            images = torch.stack([v2.functional.resize(img, size, antialias=True) for img in split.images])
            self._resident[name] = images.to(device), split.targets.to(device)
        return self._resident[name]

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if self.on_device:
            batch = self._gather(*batch)
        if self.channels_last:
            x, y = batch
            batch = x.contiguous(memory_format=torch.channels_last), y
        return batch

    def _gather(self, name: str, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The normalised (and, for training, augmented) batch of ``idx`` from split ``name``."""
        images, targets = self.resident(name, idx.device)
        x = images[idx]
        if name == "train" and self.batch_augment is not None:
            x = self.batch_augment(x, self._device_generator(idx.device))
        else:
            x = to_unit_float(x)
        if self._stats is None:
            stats = (self.meta["mean"], self.meta["std"])
            self._stats = tuple(torch.tensor(v, device=idx.device).view(1, -1, 1, 1) for v in stats)
        mean, std = self._stats
        return x.sub_(mean).div_(std), targets[idx]

    def _device_generator(self, device: torch.device) -> torch.Generator:
        """The augmentation RNG: seeded from torch's seed (``seed_everything``) plus the rank, so
        runs repeat and DDP ranks draw different parameters."""
        if self._generator is None:
            rank = self.trainer.global_rank if self.trainer is not None else 0
            self._generator = torch.Generator(device=device).manual_seed(torch.initial_seed() + rank)
        return self._generator

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)
