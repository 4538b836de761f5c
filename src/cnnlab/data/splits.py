"""Seeded train/val/test splits: stratified per image, or by identity (whole classes held out)."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split


def stratified_split(labels: list[str], val: float, test: float, seed: int) -> list[str]:
    """Assign each index to "train", "val" or "test", stratified by label.

    Args:
        labels: one label per item.
        val: fraction of all items for validation.
        test: fraction of all items for test.
        seed: the split's random seed.
    """
    idx = np.arange(len(labels))
    y = np.asarray(labels)
    split = np.array(["train"] * len(labels), dtype=object)
    n_test, n_val = round(test * len(labels)), round(val * len(labels))  # exact counts, no float drift
    rest, test_idx = train_test_split(idx, test_size=n_test, stratify=y, random_state=seed) if n_test else (idx, [])
    if n_val:
        _, val_idx = train_test_split(rest, test_size=n_val, stratify=y[rest], random_state=seed)
        split[val_idx] = "val"
    split[test_idx] = "test"
    return split.tolist()


def identity_split(labels: list[str], val_ids: int, test_ids: int, seed: int) -> list[str]:
    """Hold out whole identities: ``val_ids`` people for validation, ``test_ids`` for test.

    No person appears in two splits, so face metrics on val/test are measured on people the
    encoder never saw. Tune on "val", report on "test".
    """
    people = sorted(set(labels))
    if val_ids + test_ids >= len(people):
        raise ValueError(f"data.split: {val_ids} val + {test_ids} test identities leave none of "
                         f"the {len(people)} people for training")
    order = np.random.default_rng(seed).permutation(people)
    role = {p: "test" for p in order[:test_ids]}
    role.update({p: "val" for p in order[test_ids:test_ids + val_ids]})
    return [role.get(label, "train") for label in labels]
