"""Turn a raw source into a prepared image-folder data set.

Output layout (deterministic, no timestamps)::

    <out>/{train,val,test}/<label>/<name>.png
    <out>/manifest.csv      path,label,split  (paths relative to <out>)
    <out>/dataset.json      classes, channels, image size, per-channel mean/std of train, counts

The whole folder is written to a temporary sibling and renamed into place at the end, so an
interrupted run leaves no half-prepared data set behind.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from ..io import atomic_path
from .images import DataError, load_image, scan_image_folder
from .splits import identity_split, stratified_split


@dataclass
class SplitConfig:
    """How to split: ``by="images"`` (stratified) or ``by="identities"`` (held-out people)."""

    by: str = "images"
    val: float = 0.15
    test: float = 0.15
    val_ids: int = 4
    test_ids: int = 4
    seed: int = 0


def digits_source(image_size: int = 32) -> Iterable[tuple[str, str, Image.Image]]:
    """The 1,797 8×8 digits bundled with scikit-learn, upscaled to ``image_size`` grey PNGs."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    for i, (img, target) in enumerate(zip(bunch.images, bunch.target)):
        arr = np.clip(img * (255.0 / 16.0), 0, 255).astype(np.uint8)
        yield f"{i:04d}", str(int(target)), Image.fromarray(arr, "L").resize((image_size, image_size), Image.BILINEAR)


def folder_source(root: str | Path, mode: str) -> Iterable[tuple[str, str, Image.Image]]:
    """Every image of an image folder (validated first, so a bad file fails before any write)."""
    root = Path(root)
    items = scan_image_folder(root)
    for path, label in items:
        rel = path.relative_to(root / label).with_suffix("")
        yield "__".join(rel.parts), label, load_image(path, mode)


def _limit(items: list[tuple[str, str, Image.Image]], per_class: int | None) -> list:
    if not per_class:
        return items
    seen: dict[str, int] = {}
    out = []
    for item in items:
        seen[item[1]] = seen.get(item[1], 0) + 1
        if seen[item[1]] <= per_class:
            out.append(item)
    return out


def _keep_classes(items: list[tuple[str, str, Image.Image]], classes: Sequence[str] | None, name: str) -> list:
    if classes is None:
        return items
    wanted = [str(c) for c in classes]
    unknown = sorted(set(wanted) - {label for _, label, _ in items})
    if unknown:
        raise DataError(f"{name}: data.classes {unknown} not in the source (it has "
                        f"{sorted({label for _, label, _ in items})})")
    return [item for item in items if item[1] in wanted]


def prepare_dataset(items: Iterable[tuple[str, str, Image.Image]], out_dir: str | Path, split: SplitConfig,
                    channels: int, limit_per_class: int | None = None, name: str | None = None,
                    classes: Sequence[str] | None = None) -> dict:
    """Split ``items`` and write the prepared folder atomically. Returns the dataset.json content.

    Args:
        classes: keep only these labels (e.g. digits 0-4 for a transfer-learning source task).

    Raises:
        DataError: fewer than 2 classes, a class too small to split, or an unknown class in ``classes``.
    """
    out_dir = Path(out_dir)
    items = _limit(_keep_classes(list(items), classes, name or str(out_dir)), limit_per_class)
    labels = [label for _, label, _ in items]
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise DataError(f"{name or out_dir}: need at least 2 classes, found {len(classes)}")
    if split.by == "identities":
        roles = identity_split(labels, split.val_ids, split.test_ids, split.seed)
    elif split.by == "images":
        try:
            roles = stratified_split(labels, split.val, split.test, split.seed)
        except ValueError as err:
            raise DataError(f"{name or out_dir}: cannot split per image ({err}); add images or lower "
                            f"data.split.val / data.split.test") from err
    else:
        raise DataError(f"data.split.by must be 'images' or 'identities', got {split.by!r}")
    mode = "L" if channels == 1 else "RGB"
    rows, sums, sq, npix, sizes = [], np.zeros(channels), np.zeros(channels), 0, set()
    with atomic_path(out_dir) as tmp:
        for (stem, label, img), role in zip(items, roles):
            img = img.convert(mode)
            rel = Path(role) / label / f"{stem}.png"
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            img.save(tmp / rel)
            rows.append((rel.as_posix(), label, role))
            sizes.add(img.size)
            if role == "train":
                arr = np.asarray(img, dtype=np.float64).reshape(-1, channels) / 255.0
                sums += arr.sum(0)
                sq += (arr ** 2).sum(0)
                npix += arr.shape[0]
        mean = sums / max(npix, 1)
        std = np.sqrt(np.maximum(sq / max(npix, 1) - mean ** 2, 1e-12))
        with open(tmp / "manifest.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "label", "split"])
            writer.writerows(rows)
        meta = {
            "name": name or out_dir.name,
            "classes": classes,
            "channels": channels,
            "image_size": list(sorted(sizes)[0][::-1]) if len(sizes) == 1 else None,  # [H, W], or None if mixed
            "mean": [round(float(m), 6) for m in mean],
            "std": [round(float(s), 6) for s in std],
            "split_by": split.by,
            "counts": {r: roles.count(r) for r in ("train", "val", "test")},
            "classes_per_split": {r: sorted({lab for lab, ro in zip(labels, roles) if ro == r})
                                  for r in ("train", "val", "test")},
        }
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
