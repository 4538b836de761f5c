"""Turn a raw source into a prepared image-folder data set.

Output layout (deterministic, no timestamps)::

    <out>/{train,val,test}/<label>/<name>.png
    <out>/manifest.csv      path,label,split  (paths relative to <out>; one row per file written)
    <out>/dataset.json      classes, channels, image size, per-channel mean/std of train, counts,
                            "data" (the data config it was prepared from: root, name, ...) and
                            "import" (every file skipped or changed, by name)

An image folder keeps its names: ``<label>/a/b.jpg`` becomes ``<split>/<label>/a/b.jpg.png``
(``.png`` sources keep their name), so N images give N files and a prepared file leads back to
its source. The whole folder is written to a temporary sibling and renamed into place at the end,
so an interrupted or failed run leaves no half-prepared data set behind.

:data:`PREPARERS` maps ``data.source`` to the function that prepares it (the ``prepare`` stage's
dispatch point).
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from ..io import atomic_path
from .images import TINY_SIDE, DataError, read_image, scan_folder
from .splits import identity_split, stratified_split

log = logging.getLogger("cnnlab")


@dataclass
class SplitConfig:
    """How to split: ``by="images"`` (stratified) or ``by="identities"`` (held-out people)."""

    by: str = "images"
    val: float = 0.15
    test: float = 0.15
    val_ids: int = 4
    test_ids: int = 4
    seed: int = 0


@dataclass(frozen=True)
class SourceImage:
    """An image file of a folder source, decoded only when it is written (memory stays flat).

    Attributes:
        path: the file.
        rel: its path relative to the source root (how reports name it).
        mode: "L" or "RGB".
    """

    path: Path
    rel: str
    mode: str

    def load(self) -> tuple[Image.Image, list[str]]:
        """The decoded image and what decoding changed (:func:`cnnlab.data.images.read_image`)."""
        return read_image(self.path, self.mode)


class SourceItems(list):
    """A source's ``(name, label, image)`` items plus the files it skipped.

    Attributes:
        skipped: ``(file relative to the root, reason)`` of every file not used.
    """

    def __init__(self, items: Iterable = (), skipped: Sequence[tuple[str, str]] = ()):
        super().__init__(items)
        self.skipped = list(skipped)


def digits_source(image_size: int = 32) -> Iterable[tuple[str, str, Image.Image]]:
    """The 1,797 8×8 digits bundled with scikit-learn, upscaled to ``image_size`` grey PNGs."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    for i, (img, target) in enumerate(zip(bunch.images, bunch.target)):
        arr = np.clip(img * (255.0 / 16.0), 0, 255).astype(np.uint8)
        yield f"{i:04d}", str(int(target)), Image.fromarray(arr, "L").resize((image_size, image_size), Image.BILINEAR)


def output_name(rel: Path) -> str:
    """The prepared name (without the final ``.png``) of a source file at ``rel`` in its class folder.

    ``a/b.png`` → ``a/b`` (written ``a/b.png``); ``00.jpg`` → ``00.jpg`` (written ``00.jpg.png``).
    """
    return rel.with_suffix("").as_posix() if rel.suffix.lower() == ".png" else rel.as_posix()


def folder_source(root: str | Path, mode: str) -> SourceItems:
    """Every image of an image folder ``root/<label>/...``, named by :func:`output_name`.

    The folder is scanned (and bad files rejected) before anything is written; the images are
    decoded while they are written. Files outside the class folders are in ``skipped``.
    """
    root = Path(root)
    scan = scan_folder(root)
    items = [(output_name(path.relative_to(root / label)), label,
              SourceImage(path, path.relative_to(root).as_posix(), mode)) for path, label in scan.items]
    return SourceItems(items, [(p.relative_to(root).as_posix(), why) for p, why in scan.skipped])


def unique_names(items: list[tuple[str, str, Any]]) -> tuple[list[tuple[str, str, Any]], list[dict]]:
    """Give every item of a class a distinct name (compared case-insensitively, as macOS and
    Windows do), adding ``~2``, ``~3``... to later duplicates. Returns the items and the renames."""
    taken: set[tuple[str, str]] = set()
    out, renamed = [], []
    for name, label, img in items:
        new, k = name, 1
        while (label, new.casefold()) in taken:
            k += 1
            new = f"{name}~{k}"
        taken.add((label, new.casefold()))
        if new != name:
            what = img.rel if isinstance(img, SourceImage) else f"{label}/{name}"
            renamed.append({"file": what, "change": f"renamed to {new}.png (the name {name}.png was taken)"})
        out.append((new, label, img))
    return out, renamed


def _limit(items: list[tuple[str, str, Any]], per_class: int | None) -> list:
    if not per_class:
        return items
    seen: dict[str, int] = {}
    out = []
    for item in items:
        seen[item[1]] = seen.get(item[1], 0) + 1
        if seen[item[1]] <= per_class:
            out.append(item)
    return out


def _keep_classes(items: list[tuple[str, str, Any]], classes: Sequence[str] | None, name: str) -> list:
    if classes is None:
        return items
    wanted = [str(c) for c in classes]
    unknown = sorted(set(wanted) - {label for _, label, _ in items})
    if unknown:
        raise DataError(f"{name}: data.classes {unknown} not in the source (it has "
                        f"{sorted({label for _, label, _ in items})})")
    return [item for item in items if item[1] in wanted]


def _roles(labels: list[str], split: SplitConfig, name: str) -> list[str]:
    if split.by == "identities":
        return identity_split(labels, split.val_ids, split.test_ids, split.seed)
    if split.by == "images":
        try:
            return stratified_split(labels, split.val, split.test, split.seed)
        except ValueError as err:
            raise DataError(f"{name}: cannot split per image ({err}); add images or lower "
                            f"data.split.val / data.split.test") from err
    raise DataError(f"data.split.by must be 'images' or 'identities', got {split.by!r}")


class _Report:
    """Every file skipped or changed, logged by name as it happens and counted in dataset.json."""

    def __init__(self, skipped: Sequence[tuple[str, str]], renamed: list[dict]):
        self.skipped = [{"file": f, "reason": why} for f, why in skipped]
        self.changed = list(renamed)
        self.tiny: list[dict] = []
        for s in self.skipped:
            log.warning("skipped %s: %s", s["file"], s["reason"])
        for c in self.changed:
            log.warning("changed %s: %s", c["file"], c["change"])

    def image(self, img: Any, decoded: Image.Image, notes: list[str], fallback: str) -> None:
        what = img.rel if isinstance(img, SourceImage) else fallback
        for note in notes:
            log.info("changed %s: %s", what, note)
            self.changed.append({"file": what, "change": note})
        if min(decoded.size) < TINY_SIDE:
            w, h = decoded.size
            log.warning("tiny image %s: %d×%d pixels (kept; it is resized to the model's input size)", what, w, h)
            self.tiny.append({"file": what, "size": [h, w]})

    def summary(self, n_found: int, n_written: int, n_not_selected: int) -> dict:
        return {"images_found": n_found, "written": n_written, "not_selected": n_not_selected,
                "n_skipped": len(self.skipped), "n_changed": len({c["file"] for c in self.changed}),
                "n_tiny": len(self.tiny), "skipped": self.skipped, "changed": self.changed, "tiny": self.tiny}


def _size_facts(sizes: dict[tuple[int, int], int], name: str) -> list[int] | None:
    """``[H, W]`` when every image has one size; else None, with a log line saying which sizes."""
    if len(sizes) == 1:
        w, h = next(iter(sizes))
        return [h, w]
    areas = sorted(sizes, key=lambda s: (s[0] * s[1], s))
    (w0, h0), (w1, h1) = areas[0], areas[-1]
    (wc, hc), n = max(sizes.items(), key=lambda kv: kv[1])
    log.info("%s: images have %d different sizes, from %d×%d to %d×%d (most common %d×%d, %d images): "
             "image_size is null, each image is resized to the model's input size", name, len(sizes),
             w0, h0, w1, h1, wc, hc, n)
    return None


def prepare_dataset(items: Iterable[tuple[str, str, Any]], out_dir: str | Path, split: SplitConfig,
                    channels: int, limit_per_class: int | None = None, name: str | None = None,
                    classes: Sequence[str] | None = None, record: dict | None = None) -> dict:
    """Split ``items`` and write the prepared folder atomically. Returns the dataset.json content.

    Args:
        items: ``(name, label, image)``: the file is ``<split>/<label>/<name>.png``; the image is a
            PIL image or a :class:`SourceImage` (decoded here). A :class:`SourceItems` also brings
            the files its source skipped, which are reported.
        classes: keep only these labels (e.g. digits 0-4 for a transfer-learning source task).
        record: the data config this is prepared from, stored as dataset.json's ``data`` (later
            stages find the data set by name from it).

    Raises:
        DataError: fewer than 2 classes, a class too small to split, an unknown class in
            ``classes``, or an image that cannot be decoded (nothing is written).
    """
    out_dir = Path(out_dir)
    title = name or str(out_dir)
    skipped = getattr(items, "skipped", [])
    found = list(items)
    items, renamed = unique_names(_limit(_keep_classes(found, classes, title), limit_per_class))
    labels = [label for _, label, _ in items]
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise DataError(f"{title}: need at least 2 classes, found {len(classes)}")
    roles = _roles(labels, split, title)
    report = _Report(skipped, renamed)
    mode = "L" if channels == 1 else "RGB"
    rows, sums, sq, npix, sizes = [], np.zeros(channels), np.zeros(channels), 0, {}
    with atomic_path(out_dir) as tmp:
        for (stem, label, img), role in zip(_progress(items, title), roles):
            decoded, notes = img.load() if isinstance(img, SourceImage) else (img, [])
            decoded = decoded.convert(mode)
            rel = Path(role) / label / f"{stem}.png"
            report.image(img, decoded, notes, f"{label}/{stem}")
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            decoded.save(tmp / rel)
            rows.append((rel.as_posix(), label, role))
            sizes[decoded.size] = sizes.get(decoded.size, 0) + 1
            if role == "train":
                arr = np.asarray(decoded, dtype=np.float64).reshape(-1, channels) / 255.0
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
            "image_size": _size_facts(sizes, title),  # [H, W], or None if mixed
            "mean": [round(float(m), 6) for m in mean],
            "std": [round(float(s), 6) for s in std],
            "split_by": split.by,
            "counts": {r: roles.count(r) for r in ("train", "val", "test")},
            "classes_per_split": {r: sorted({lab for lab, ro in zip(labels, roles) if ro == r})
                                  for r in ("train", "val", "test")},
            "import": report.summary(len(found), len(rows), len(found) - len(items)),
        }
        if record is not None:
            meta["data"] = record
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    imp = meta["import"]
    if imp["n_skipped"] or imp["n_changed"] or imp["n_tiny"]:
        log.warning("%s: %d files skipped, %d changed, %d tiny (each named above; dataset.json \"import\" "
                    "lists them)", title, imp["n_skipped"], imp["n_changed"], imp["n_tiny"])
    return meta


def _progress(items: list, title: str) -> Iterable:
    """A progress bar on a terminal (none in logs) for long imports."""
    from tqdm import tqdm

    return tqdm(items, desc=f"prepare {title}", unit="img", disable=None, leave=False)


# --------------------------------------------------------------------------- dispatch by data.source

def _split(data: dict) -> SplitConfig:
    return SplitConfig(**data["split"])


def prepare_sklearn_digits(data: dict, out: str | Path) -> dict:
    """``data.source: sklearn_digits``: scikit-learn's digits at ``data.image_size`` (default 32)."""
    return prepare_dataset(digits_source(data.get("image_size") or 32), out, _split(data), channels=data["channels"],
                           limit_per_class=data.get("limit_per_class"), name=data["name"],
                           classes=data.get("classes"), record=data)


def prepare_folder(data: dict, out: str | Path) -> dict:
    """``data.source: folder``: an image folder ``data.root/<label>/...``.

    Raises:
        DataError: ``data.root`` is not set, or ``out`` holds a data set prepared from another
            folder (a second folder never overwrites the first: give it its own ``data.name``).
    """
    if not data.get("root"):
        raise DataError("data.root is not set: data=folder data.root=/path/to/images data.name=NAME")
    data = {**data, "root": str(Path(data["root"]).expanduser())}  # `data.root=~/x` reaches us unexpanded
    _refuse_other_root(Path(out), data)
    items = folder_source(data["root"], "L" if data["channels"] == 1 else "RGB")
    return prepare_dataset(items, out, _split(data), channels=data["channels"],
                           limit_per_class=data.get("limit_per_class"), name=data["name"],
                           classes=data.get("classes"), record=data)


def _refuse_other_root(out: Path, data: dict) -> None:
    meta_file = out / "dataset.json"
    if not meta_file.is_file():
        return
    try:
        old = json.loads(meta_file.read_text()).get("data") or {}
    except json.JSONDecodeError:
        return  # not ours to protect: a broken record is replaced
    if old.get("root") and Path(old["root"]).resolve() != Path(data["root"]).resolve():
        raise DataError(f"{out} holds the data set prepared from {old['root']}, not {data['root']}: give this "
                        f"folder its own name (data.name=NAME), or delete {out} to replace it")


# data.source → preparer(resolved data config, output folder) → the dataset.json content it wrote.
# A preparer writes its folder atomically and stores the data config as dataset.json's "data".
PREPARERS: dict[str, Callable[[dict, str | Path], dict]] = {
    "sklearn_digits": prepare_sklearn_digits,
    "folder": prepare_folder,
}


def prepare(data: dict, out: str | Path) -> dict:
    """Prepare the data set that the (resolved) ``data`` config describes into ``out``.

    Raises:
        DataError: an unknown ``data.source``, or what its preparer raises.
    """
    source = data.get("source")
    if source not in PREPARERS:
        raise DataError(f"data.source must be one of {sorted(PREPARERS)}, got {source!r}")
    return PREPARERS[source](data, out)
