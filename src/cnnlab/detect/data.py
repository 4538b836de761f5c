"""The detection / segmentation data contract: one folder layout, one writer, one reader.

A prepared data set ``data/prepared/<name>/`` holds::

    dataset.json                {"task": "detection", "name", "classes": [...], "source", "seed",
                                 "splits": {"train": n, ...}, ...}
    <split>/images/<id>.png     RGB
    <split>/masks/<id>.png      uint8 semantic mask: 0 = background, 1 + class_id (optional)
    <split>/annotations.json    [{"id", "file", "width", "height", "objects": [
                                    {"class", "class_id", "box": [x1, y1, x2, y2],
                                     "difficult", "landmarks": [[x, y] x 5] | null}]}]

Boxes are float pixels, ``xyxy``, origin at the image's top-left corner, ``x2``/``y2`` exclusive
(a box of the single top-left pixel is ``[0, 0, 1, 1]``). ``classes`` holds no background:
``class_id`` indexes it, and the mask stores ``1 + class_id``.

Every importer (the scenes generator, Pascal VOC, COCO) goes through :func:`write_dataset`, which
checks each sample before anything is written and publishes the folder atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from ..data.images import DataError
from ..io import atomic_path

SPLITS = ("train", "val", "test")
N_LANDMARKS = 5


@dataclass
class Sample:
    """One image with its objects, as an importer hands it to :func:`write_dataset`.

    Attributes:
        id: file stem, unique within the split (no ``/``).
        image: ``[H, W, 3]`` uint8 RGB, or a callable returning it (read lazily, so that a large
            folder is never held in memory at once).
        objects: dicts with ``class``, ``class_id``, ``box`` and optionally ``difficult`` and
            ``landmarks``.
        mask: ``[H, W]`` uint8 semantic mask (0 = background, ``1 + class_id``), or None.
        extra: per-image keys kept in ``annotations.json`` (e.g. the generator's parameters).
    """

    id: str
    image: np.ndarray | Callable[[], np.ndarray]
    objects: list[dict[str, Any]]
    mask: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    width: int | None = None
    height: int | None = None


def check_object(obj: dict[str, Any], classes: Sequence[str], width: int, height: int, where: str) -> dict:
    """Validate and normalise one object; returns it in the contract's form.

    Raises:
        DataError: naming ``where`` (file and object): unknown class, box outside the image, zero
            area or ``x1 >= x2`` / ``y1 >= y2``, landmarks of the wrong shape.
    """
    name = obj.get("class")
    if name not in classes:
        raise DataError(f"{where}: unknown class {name!r} (classes: {list(classes)})")
    try:
        x1, y1, x2, y2 = (float(v) for v in obj["box"])
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"{where}: box must be 4 numbers [x1, y1, x2, y2], got {obj.get('box')!r}") from err
    if not all(np.isfinite([x1, y1, x2, y2])):
        raise DataError(f"{where}: box {[x1, y1, x2, y2]} is not finite")
    if x1 >= x2 or y1 >= y2:
        raise DataError(f"{where}: empty box {[x1, y1, x2, y2]} (needs x1 < x2 and y1 < y2: zero area)")
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        raise DataError(f"{where}: box {[x1, y1, x2, y2]} lies outside the {width}x{height} image")
    marks = obj.get("landmarks")
    if marks is not None:
        marks = np.asarray(marks, dtype=np.float64)
        if marks.shape != (N_LANDMARKS, 2):
            raise DataError(f"{where}: landmarks must be {N_LANDMARKS} (x, y) pairs, got shape {marks.shape}")
        marks = marks.round(4).tolist()
    return {"class": name, "class_id": classes.index(name), "box": [round(v, 4) for v in (x1, y1, x2, y2)],
            "difficult": bool(obj.get("difficult", False)), "landmarks": marks}


def _image_array(image: np.ndarray | Callable[[], np.ndarray], where: str) -> np.ndarray:
    arr = np.asarray(image() if callable(image) else image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise DataError(f"{where}: image must be uint8 [H, W, 3], got {arr.dtype} {arr.shape}")
    return arr


def check_samples(splits: dict[str, Sequence[Sample]], classes: Sequence[str]) -> dict[str, list[dict]]:
    """Every split's annotation records, validated; raises before anything is written.

    Samples need ``width``/``height`` (or an in-memory image) so that boxes can be checked without
    decoding a lazily read image.
    """
    records: dict[str, list[dict]] = {}
    for split, samples in splits.items():
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r} (expected one of {SPLITS})")
        seen: set[str] = set()
        rows = []
        for s in samples:
            if not s.id or "/" in s.id or s.id in seen:
                raise DataError(f"{split}: bad or duplicate image id {s.id!r}")
            seen.add(s.id)
            if s.width is None or s.height is None:
                h, w = np.asarray(s.image).shape[:2]
            else:
                w, h = s.width, s.height
            objs = [check_object(o, classes, w, h, f"{s.extra.get('source_file', s.id)} object {i} "
                                                   f"({o.get('class')!r})")
                    for i, o in enumerate(s.objects)]
            rows.append({"id": s.id, "file": f"images/{s.id}.png", "width": int(w), "height": int(h),
                         "objects": objs, **s.extra})
        records[split] = rows
    return records


def write_dataset(out: str | Path, splits: dict[str, Sequence[Sample]], classes: Sequence[str], *,
                  name: str, source: str, seed: int | None, extra: dict[str, Any] | None = None,
                  finish: Callable[[Path], None] | None = None) -> dict:
    """Validate every sample, then write the prepared folder atomically. Returns dataset.json's content.

    Args:
        out: the data set folder (replaced as a whole only when everything was written).
        splits: split name → samples.
        classes: class names, no background; ``class_id`` indexes them.
        extra: more keys for dataset.json (e.g. the generator's settings, credits).
        finish: called with the unpublished folder once everything is in it (e.g. to draw
            ``preview.png``), so that a failure there publishes nothing either.

    Raises:
        DataError: a bad sample (nothing is written).
    """
    classes = list(classes)
    if len(set(classes)) != len(classes) or not classes:
        raise DataError(f"{name}: classes must be unique and non-empty, got {classes}")
    records = check_samples(splits, classes)
    counts = {s: len(r) for s, r in records.items()}
    with atomic_path(out) as tmp:
        for split, samples in splits.items():
            (tmp / split / "images").mkdir(parents=True)
            has_masks = any(s.mask is not None for s in samples)
            if has_masks:
                (tmp / split / "masks").mkdir()
            for s, rec in zip(samples, records[split]):
                img = _image_array(s.image, s.extra.get("source_file", s.id))
                if img.shape[:2] != (rec["height"], rec["width"]):
                    raise DataError(f"{s.extra.get('source_file', s.id)}: image is {img.shape[1]}x{img.shape[0]}, "
                                    f"its annotation says {rec['width']}x{rec['height']}")
                Image.fromarray(img, "RGB").save(tmp / split / rec["file"])
                if s.mask is not None:
                    m = np.asarray(s.mask)
                    if m.shape != img.shape[:2] or m.dtype != np.uint8 or m.max() > len(classes):
                        raise DataError(f"{s.id}: mask must be uint8 {img.shape[:2]} with values 0..{len(classes)}")
                    Image.fromarray(m, "L").save(tmp / split / "masks" / f"{s.id}.png")
                elif has_masks:
                    raise DataError(f"{split}/{s.id}: no mask while other images of the split have one")
            (tmp / split / "annotations.json").write_text(json.dumps(records[split], indent=1) + "\n")
        meta = {"task": "detection", "name": name, "classes": classes, "source": source, "seed": seed,
                "splits": counts, "counts": counts,
                "objects": {s: sum(len(r["objects"]) for r in rows) for s, rows in records.items()},
                **(extra or {})}
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
        if finish is not None:
            finish(tmp)
    return meta


def read_meta(root: str | Path) -> dict[str, Any]:
    """``dataset.json`` of a prepared detection data set.

    Raises:
        DataError: no dataset.json, or it is not a detection data set.
    """
    path = Path(root) / "dataset.json"
    if not path.is_file():
        raise DataError(f"{path}: not found (prepare it: python -m cnnlab.stages.prepare data=<name>)")
    meta = json.loads(path.read_text())
    if meta.get("task") != "detection":
        raise DataError(f"{path}: not a detection data set (task={meta.get('task')!r})")
    return meta


def read_split(root: str | Path, split: str) -> list[dict[str, Any]]:
    """The annotation records of one split (see the module docstring for their keys).

    Raises:
        DataError: the split or its annotations.json is missing.
    """
    path = Path(root) / split / "annotations.json"
    if not path.is_file():
        raise DataError(f"{path}: not found (splits of {root}: {sorted(read_meta(root)['splits'])})")
    return json.loads(path.read_text())


def target_tensors(record: dict[str, Any]) -> dict[str, Any]:
    """Boxes, labels, difficult flags and landmarks of one record as tensors (no image, no mask)."""
    import torch
    from torchvision import tv_tensors

    objs = record["objects"]
    boxes = torch.tensor([o["box"] for o in objs], dtype=torch.float32).reshape(-1, 4)
    marks = torch.full((len(objs), N_LANDMARKS, 2), float("nan"))
    for i, o in enumerate(objs):
        if o.get("landmarks") is not None:
            marks[i] = torch.tensor(o["landmarks"], dtype=torch.float32)
    return {
        "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(record["height"], record["width"])),
        "labels": torch.tensor([o["class_id"] for o in objs], dtype=torch.int64),
        "difficult": torch.tensor([bool(o.get("difficult")) for o in objs], dtype=torch.bool),
        "landmarks": marks,
        "image_id": record["id"],
    }


class DetectionDataset:
    """A prepared split as a map-style data set of ``(image, target)``.

    ``image`` is a ``tv_tensors.Image`` (uint8 ``[3, H, W]``); ``target`` has ``boxes``
    (``tv_tensors.BoundingBoxes``, XYXY), ``labels`` (int64 class ids), ``difficult`` (bool),
    ``landmarks`` (float ``[N, 5, 2]``, NaN where absent), ``mask`` (``tv_tensors.Mask [H, W]``,
    when the split has masks) and ``image_id``.

    Args:
        root: the prepared data set folder.
        split: ``"train"``, ``"val"`` or ``"test"``.
        transforms: a torchvision v2 transform called as ``transforms(image, target)``; it moves
            boxes and masks with the image (landmarks are not moved: use no geometric transform
            when they matter).
    """

    def __init__(self, root: str | Path, split: str, transforms: Callable | None = None) -> None:
        self.root = Path(root)
        self.split = split
        self.meta = read_meta(root)
        self.classes = list(self.meta["classes"])
        self.records = read_split(root, split)
        self.transforms = transforms
        self.has_masks = (self.root / split / "masks").is_dir()

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int):
        import torch
        from torchvision import tv_tensors

        rec = self.records[i]
        with Image.open(self.root / self.split / rec["file"]) as im:
            arr = np.asarray(im.convert("RGB"))
        image = tv_tensors.Image(torch.from_numpy(arr.copy()).permute(2, 0, 1))
        target = target_tensors(rec)
        if self.has_masks:
            with Image.open(self.root / self.split / "masks" / f"{rec['id']}.png") as m:
                target["mask"] = tv_tensors.Mask(torch.from_numpy(np.asarray(m).copy()))
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target


def collate(batch: Iterable[tuple[Any, dict]]) -> tuple[list, list]:
    """Detection batches keep per-image lists (images may differ in size and object count)."""
    images, targets = zip(*batch)
    return list(images), list(targets)
