"""Segmentation data: the prepared layout's images and masks as tensors, joint augmentation, a DataModule.

Reads any prepared data set of the shared layout (``<split>/images/<id>.png``,
``<split>/masks/<id>.png``, 0 = background, ``1 + class_id``): the embedded ``scenes`` and
imported mask folders alike. The segmentation classes are ``[background, *classes]``, so a mask
value is the class index.

Augmentation goes through ``torchvision.transforms.v2`` with the mask as a ``tv_tensors.Mask``:
the random parameters are drawn once per sample and applied to both (nearest-neighbour for the
mask), colour jitter touches the image only, and pixels that a rotation or elastic warp brings in
from outside the image are marked :data:`IGNORE` in the mask (the loss and metrics skip them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..data.images import DataError

IGNORE = 255  # mask value for pixels without a label (brought in by a rotation or warp)


def read_classes(root: str | Path) -> list[str]:
    """``[background, *classes]`` of a prepared data set (``dataset.json``'s ``background``, default "background").

    Raises:
        DataError: no dataset.json, or the data set has no masks.
    """
    path = Path(root) / "dataset.json"
    if not path.is_file():
        raise DataError(f"{path}: not found (prepare it: python -m cnnlab.stages.prepare data=<name>, "
                        f"or data=masks data.root=DIR)")
    meta = json.loads(path.read_text())
    if not (Path(root) / "train" / "masks").is_dir():
        raise DataError(f"{Path(root) / 'train' / 'masks'}: the data set {meta.get('name')!r} has no masks to "
                        f"train a segmenter on")
    return [meta.get("background", "background"), *meta["classes"]]


def image_ids(root: Path, split: str) -> list[str]:
    """The split's image ids: ``annotations.json``'s order, else the sorted PNG names."""
    ann = root / split / "annotations.json"
    if ann.is_file():
        return [r["id"] for r in json.loads(ann.read_text())]
    folder = root / split / "images"
    if not folder.is_dir():
        raise DataError(f"{folder}: not found")
    return sorted(p.stem for p in folder.glob("*.png"))


class MaskDataset(Dataset):
    """``(image, mask)`` pairs of one split: ``tv_tensors.Image`` uint8 [3, H, W] and ``Mask`` [H, W].

    After ``transforms`` the image is whatever they return (float in [0, 1] for the ones of this
    module) and the mask int64.
    """

    def __init__(self, root: str | Path, split: str, transforms: Callable | None = None):
        self.root, self.split, self.transforms = Path(root), split, transforms
        self.ids = image_ids(self.root, split)
        if not self.ids:
            raise DataError(f"{self.root / split}: no images")

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, i: int) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
        """The untransformed image and mask of item ``i``."""
        name = self.ids[i]
        img_path, mask_path = (self.root / self.split / sub / f"{name}.png" for sub in ("images", "masks"))
        with Image.open(img_path) as im:
            image = torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)
        with Image.open(mask_path) as m:
            mask = torch.from_numpy(np.asarray(m).copy())
        if mask.shape != image.shape[-2:]:
            raise DataError(f"{mask_path}: mask is {tuple(mask.shape)}, image {tuple(image.shape[-2:])}")
        return tv_tensors.Image(image), tv_tensors.Mask(mask)

    def __getitem__(self, i: int):
        image, mask = self.load(i)
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        return image, mask.long() if isinstance(mask, torch.Tensor) else mask


_TO_FLOAT = v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True)


def train_transforms(size: Sequence[int], *, flip: bool = True, crop_scale: Sequence[float] = (0.6, 1.0),
                     rotation: float = 10.0, elastic_p: float = 0.25, elastic_alpha: float = 20.0,
                     elastic_sigma: float = 5.0, colour: Sequence[float] = (0.3, 0.3, 0.3, 0.03)) -> v2.Compose:
    """Joint augmentation to ``size`` (H, W): random resized crop, flip, small rotation, elastic warp
    (image and mask together), colour jitter (image only), then the image as float in [0, 1]."""
    h, w = size
    fill = {tv_tensors.Image: 0, tv_tensors.Mask: IGNORE}
    steps: list[Any] = [v2.RandomResizedCrop((h, w), scale=tuple(crop_scale), ratio=(0.8 * w / h, 1.25 * w / h),
                                             antialias=True)]
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    if rotation:
        steps.append(v2.RandomRotation(rotation, fill=fill))
    if elastic_p:
        steps.append(v2.RandomApply([v2.ElasticTransform(alpha=elastic_alpha, sigma=elastic_sigma, fill=fill)],
                                    p=elastic_p))
    if any(colour):
        b, c, s, hue = colour
        steps.append(v2.ColorJitter(brightness=b, contrast=c, saturation=s, hue=hue))
    return v2.Compose([*steps, _TO_FLOAT])


def eval_transforms(size: Sequence[int] | None) -> v2.Compose:
    """Resize to ``size`` (None: keep the image's own), image as float in [0, 1]."""
    steps = [v2.Resize(tuple(size), antialias=True)] if size else []
    return v2.Compose([*steps, _TO_FLOAT])


def class_weights(dataset: MaskDataset, n_classes: int) -> list[float]:
    """Median-frequency balancing (Eigen & Fergus 2015): median(freq) / freq_c over the training masks.

    A class absent from the training masks gets weight 0 (it cannot be learned from them anyway).
    """
    counts = np.zeros(n_classes, dtype=np.float64)
    for i in range(len(dataset)):
        _, mask = dataset.load(i)
        counts += np.bincount(mask.numpy().ravel(), minlength=256)[:n_classes]
    freq = counts / max(counts.sum(), 1)
    present = freq > 0
    weights = np.zeros(n_classes)
    weights[present] = np.median(freq[present]) / freq[present]
    return weights.round(6).tolist()


class SegmentationDataModule(L.LightningDataModule):
    """Train/val/test loaders of a prepared data set with masks.

    Args:
        root: the prepared data set.
        size: (H, W) every image and mask is brought to for training and validation.
        batch_size: images per batch.
        num_workers: DataLoader worker processes (augmentation runs there).
        augment: keyword arguments of :func:`train_transforms` (None: no augmentation, resize only).
    """

    def __init__(self, root: str | Path, size: Sequence[int], batch_size: int = 16, num_workers: int = 0,
                 augment: dict[str, Any] | None = None):
        super().__init__()
        self.root, self.size = Path(root), tuple(size)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.classes = read_classes(self.root)
        train_tf = train_transforms(self.size, **augment) if augment is not None else eval_transforms(self.size)
        self.train = MaskDataset(self.root, "train", train_tf)
        self.val = MaskDataset(self.root, "val", eval_transforms(self.size))

    def _loader(self, ds: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(ds, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, drop_last=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train, True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val, False)
