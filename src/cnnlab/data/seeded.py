"""Per-sample random seeds for training loaders: augmentation that a checkpoint can reproduce.

A random transform running in a DataLoader worker draws from that worker's generators, whose
state after a few epochs lives only inside the worker process: no checkpoint holds it, so a
resumed run could not draw what the uninterrupted one drew. Here the sampler draws one seed per
sample in the main process (once per epoch, from torch's global generator, which checkpoints
restore; or from a fixed seed and the epoch), and the dataset seeds torch, numpy and Python's
``random`` with it just for that sample. So each sample's augmentation is a function of the
epoch's seed and its position, whatever the number of workers and whether they persist, and
``resume=true`` continues exactly (see :mod:`cnnlab.tasks.checkpointing`).

Use :func:`seeded_loader` for a training DataLoader and :func:`eval_loader` for the others.
"""

from __future__ import annotations

import contextlib
import random
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler

_MASK = (1 << 63) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _mix(base: int, position: int) -> int:
    """A 63-bit seed for the ``position``-th sample of an epoch whose seed is ``base`` (splitmix64)."""
    z = (base + _GOLDEN * (position + 1)) & ((1 << 64) - 1)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
    return (z ^ (z >> 31)) & _MASK


class SeededSampler(Sampler):
    """Wrap a sampler or batch sampler so that it yields ``(seed, index)`` pairs.

    Args:
        inner: the sampler (yields indices) or batch sampler (yields lists of indices).
        seed: draw each epoch's base seed from ``(seed, epoch)``; None: from torch's global
            generator (one draw per epoch, as ``RandomSampler`` does).
    """

    def __init__(self, inner: Sampler, seed: int | None = None):
        self.inner, self.seed, self.epoch = inner, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this before every epoch; passed on to the wrapped sampler."""
        self.epoch = epoch
        if callable(getattr(self.inner, "set_epoch", None)):
            self.inner.set_epoch(epoch)

    @property
    def sampler(self) -> "SeededSampler":
        # Lightning calls ``set_epoch`` on ``loader.sampler`` and ``loader.batch_sampler.sampler``
        # only; as a batch sampler, this is how the epoch reaches the wrapped one.
        return self

    def __len__(self) -> int:
        return len(self.inner)

    def __iter__(self) -> Iterator[Any]:
        if self.seed is None:
            base = int(torch.empty((), dtype=torch.int64).random_().item())
        else:
            base = _mix(self.seed, self.epoch)
        position = 0
        for item in self.inner:
            if isinstance(item, (list, tuple)):
                yield [(_mix(base, position + j), i) for j, i in enumerate(item)]
                position += len(item)
            else:
                yield _mix(base, position), item
                position += 1


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch, numpy and ``random`` for one sample, then put their previous states back."""
    states = torch.get_rng_state(), np.random.get_state(), random.getstate()
    torch.manual_seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)
    random.seed(seed)
    try:
        yield
    finally:
        torch.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])


class SeededDataset(Dataset):
    """A dataset view whose items, fetched as ``(seed, index)``, are computed under that seed.

    A plain index (e.g. from a sampler Lightning put in place under DDP) is passed through.
    """

    def __init__(self, base: Dataset):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, tuple):
            seed, index = key
            with _seeded(seed):
                return self.base[index]
        return self.base[key]


def seeded_loader(dataset: Dataset, *, batch_size: int | None = None, shuffle: bool = False,
                  batch_sampler: Sampler | None = None, seed: int | None = None, num_workers: int = 0,
                  **kwargs: Any) -> DataLoader:
    """A DataLoader whose samples are computed under per-sample seeds (see the module docstring).

    Args:
        dataset: a map-style dataset.
        batch_size: with ``shuffle``, batches of a ``RandomSampler`` (or, with ``seed``, of an
            epoch-seeded shuffle that depends on ``seed`` and the epoch alone).
        batch_sampler: instead of ``batch_size``/``shuffle``: a sampler of index lists.
        seed: base the epoch seeds (and, with ``shuffle``, the order) on ``(seed, epoch)``
            instead of torch's global generator.
        num_workers: worker processes; they persist between epochs (results do not depend on it).
        **kwargs: other DataLoader arguments.
    """
    if batch_sampler is None:
        if shuffle and seed is not None:
            inner: Sampler = _EpochShuffle(len(dataset), seed)  # type: ignore[arg-type]
        else:
            inner = RandomSampler(dataset) if shuffle else SequentialSampler(dataset)
        sampler_kw: dict[str, Any] = {"sampler": SeededSampler(inner, seed), "batch_size": batch_size or 1}
    else:
        sampler_kw = {"batch_sampler": SeededSampler(batch_sampler, seed)}
    # The loader's own generator gives its workers' base seed: torch's global one is never drawn
    # from when an iterator starts, which a resumed run does at another point than the first run.
    return DataLoader(SeededDataset(dataset), num_workers=num_workers, persistent_workers=num_workers > 0,
                      generator=torch.Generator(), **sampler_kw, **kwargs)


def eval_loader(dataset: Dataset, batch_size: int, num_workers: int = 0, **kwargs: Any) -> DataLoader:
    """A sequential DataLoader that draws nothing from torch's global generator (validation, test)."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      persistent_workers=num_workers > 0, generator=torch.Generator(), **kwargs)


class _EpochShuffle(Sampler):
    """A permutation of ``range(n)`` drawn from ``(seed, epoch)`` alone."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(_mix(self.seed, self.epoch))
        return iter(torch.randperm(self.n, generator=g).tolist())
