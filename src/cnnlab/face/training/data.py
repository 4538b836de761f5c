"""Face training data: a prepared identity split, with P×K training batches."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from torch.utils.data import DataLoader

from ...data.datamodule import ImageFolderDataModule
from ...data.seeded import seeded_loader
from .losses import PKSampler


class FaceDataModule(ImageFolderDataModule):
    """An :class:`ImageFolderDataModule` whose training batches hold P people × K images each.

    Use it on a folder prepared with ``split.by=identities`` so that validation and test people
    are never seen in training. Validation and test loaders stay sequential.

    Args:
        root: prepared folder.
        image_size: (H, W) the encoder expects.
        p: identities per training batch.
        k: images per identity in a training batch.
        batch_size: batch size of the validation and test loaders.
        num_workers: DataLoader worker processes.
        train_transform: augmentation applied to uint8 training tensors.
        seed: seed of the P×K sampler.
        batches_per_epoch: training batches per epoch (default: about one pass over the images).
        normalization: ``{"mean", "std"}`` to use instead of the training split's statistics
            (a pretrained encoder's, when fine-tuning it).
    """

    def __init__(self, root: str | Path, image_size: tuple[int, int], p: int = 6, k: int = 4, batch_size: int = 64,
                 num_workers: int = 0, train_transform: Callable | None = None, seed: int = 0,
                 batches_per_epoch: int | None = None, normalization: dict[str, list[float]] | None = None):
        super().__init__(root, image_size, batch_size, num_workers, train_transform)
        if normalization is not None:
            self.meta = {**self.meta, "mean": list(normalization["mean"]), "std": list(normalization["std"])}
        self.p, self.k, self.seed, self.batches_per_epoch = p, k, seed, batches_per_epoch

    @property
    def train_identities(self) -> list[str]:
        """The people of the training split (the checkpoint records them)."""
        ids = set(self.split("train").targets.tolist())
        return [c for i, c in enumerate(self.classes) if i in ids]

    def train_dataloader(self) -> DataLoader:
        ds = self.split("train")
        # Under DDP (with ``use_distributed_sampler=False``) each rank draws its own batches.
        rank = self.trainer.global_rank if self.trainer is not None else 0
        sampler = PKSampler(ds.targets.numpy(), self.p, self.k, self.seed + rank, self.batches_per_epoch)
        # per-sample seeds: augmentation a resumed run reproduces (cnnlab.data.seeded)
        return seeded_loader(ds, batch_sampler=sampler, num_workers=self.num_workers)
