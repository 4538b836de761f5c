"""Import a user's image/mask folder (``data=masks data.root=DIR``) into the shared prepared layout.

Input::

    DIR/images/<name>.<ext>     any image Pillow reads
    DIR/masks/<name>.png        same size; each pixel is a class index (0 = background)
    DIR/classes.txt             optional: one class name per line, line i names index i
    DIR/{train,val,test}/...    optional: the same layout per split (the split is then as given)

A mask whose values are all 0 or 255 is a two-class mask {0, 1}. Palette ("P") PNGs are read by
index, as Pascal VOC's are; an RGB mask needs ``data.palette`` (one ``[r, g, b]`` per class index).
Images larger than ``data.max_side`` are resized (``data.large=resize``, masks by nearest
neighbour) or cut into tiles (``data.large=tile``).

Every mask is checked before anything is written, and the folder is written by
:func:`cnnlab.detect.data.write_dataset` (atomically): a missing mask, a mask without an image, a
size mismatch, a value outside the class list, an RGB mask without a palette or an unreadable file
is a :class:`DataError` naming the file, and leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..data.images import IMAGE_EXTS, DataError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class MaskImport:
    """How to import a mask folder (the ``data`` config of ``conf/data/masks.yaml``)."""

    root: str
    classes: Sequence[str] | None = None
    palette: Sequence[Sequence[int]] | None = None
    max_side: int = 1024
    large: str = "resize"
    val: float = 0.15
    test: float = 0.15
    seed: int = 0


def _pairs(folder: Path) -> list[tuple[str, Path, Path]]:
    """(name, image, mask) for every image of ``folder/images``; raises on orphans on either side."""
    images_dir, masks_dir = folder / "images", folder / "masks"
    for d in (images_dir, masks_dir):
        if not d.is_dir():
            raise DataError(f"{d}: not found (expected {folder}/images/<name>.<ext> and {folder}/masks/<name>.png)")
    images: dict[str, Path] = {}
    for f in sorted(p for p in images_dir.iterdir() if p.is_file() and not p.name.startswith(".")):
        if f.suffix.lower() not in IMAGE_EXTS:
            raise DataError(f"{f}: not an image file (extension {f.suffix!r})")
        if f.stem in images:
            raise DataError(f"{f}: two images named {f.stem!r} ({images[f.stem].name}, {f.name})")
        images[f.stem] = f
    if not images:
        raise DataError(f"{images_dir}: no images")
    masks = {f.stem: f for f in masks_dir.iterdir() if f.is_file() and not f.name.startswith(".")}
    for name, f in sorted(masks.items()):
        if name not in images:
            raise DataError(f"{f}: mask without an image (no {images_dir}/{name}.<ext>)")
    pairs = []
    for name, img in images.items():
        mask = masks_dir / f"{name}.png"
        if not mask.is_file():
            raise DataError(f"{img}: no mask {mask}")
        pairs.append((name, img, mask))
    return pairs


def _read_mask(path: Path, palette: np.ndarray | None) -> np.ndarray:
    """The mask's class indices before any 0/255 remapping, ``[H, W]`` int64."""
    try:
        with Image.open(path) as m:
            m.load()
            mode = m.mode
            arr = np.asarray(m)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: cannot read mask ({err})") from err
    if mode in ("RGB", "RGBA"):
        if palette is None:
            raise DataError(f"{path}: RGB mask without a palette mapping (set data.palette to one [r, g, b] per "
                            f"class index, or save the mask as single-channel class indices)")
        rgb = arr[..., :3].reshape(-1, 1, 3).astype(np.int64)
        hits = (rgb == palette[None]).all(-1)
        unknown = ~hits.any(1)
        if unknown.any():
            y, x = divmod(int(np.argmax(unknown)), arr.shape[1])
            raise DataError(f"{path}: colour {tuple(int(c) for c in arr[y, x, :3])} at (x={x}, y={y}) is not in "
                            f"data.palette")
        return hits.argmax(1).reshape(arr.shape[:2])
    if arr.ndim != 2:
        raise DataError(f"{path}: mask has mode {mode}; expected single-channel class indices")
    return arr.astype(np.int64)


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as img:
            return img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: cannot read image ({err})") from err


def read_classes(root: Path, configured: Sequence[str] | None) -> list[str] | None:
    """Class names by index: ``data.classes`` if set, else ``DIR/classes.txt``, else None (from the masks)."""
    if configured is not None:
        return [str(c) for c in configured]
    path = root / "classes.txt"
    if not path.is_file():
        return None
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(names) < 2 or len(set(names)) != len(names):
        raise DataError(f"{path}: needs at least two distinct class names, one per line (line 1 = index 0)")
    return names


def scan(cfg: MaskImport) -> tuple[dict[str, list[tuple[str, Path, np.ndarray]]], list[str]]:
    """Every split's (name, image path, class-index mask), validated, and the class names by index.

    Raises:
        DataError: anything wrong with any file (see the module docstring).
    """
    root = Path(cfg.root)
    if not root.is_dir():
        raise DataError(f"data root not found: {root} (set data.root=/path/to/folder)")
    split_dirs = [s for s in SPLITS if (root / s).is_dir()]
    if split_dirs and split_dirs != list(SPLITS):
        raise DataError(f"{root}: has {'/'.join(split_dirs)} but not "
                        f"{'/'.join(s for s in SPLITS if s not in split_dirs)} (give all three splits or none)")
    listed = {s: _pairs(root / s) for s in SPLITS} if split_dirs else {"all": _pairs(root)}
    palette = None if cfg.palette is None else np.asarray(cfg.palette, dtype=np.int64).reshape(-1, 3)
    masks = {s: [(n, img, _read_mask(m, palette)) for n, img, m in pairs] for s, pairs in listed.items()}
    for split, rows in masks.items():
        for (_, img, mpath), (_, _, arr) in zip(listed[split], rows):
            w, h = _image_size(img)
            if arr.shape != (h, w):
                raise DataError(f"{mpath}: mask is {arr.shape[1]}x{arr.shape[0]}, its image {img.name} is {w}x{h}")
    values = set().union(*(np.unique(a).tolist() for rows in masks.values() for _, _, a in rows))
    binary = palette is None and values <= {0, 255} and 255 in values
    if binary:
        masks = {s: [(n, p, (a == 255).astype(np.int64)) for n, p, a in rows] for s, rows in masks.items()}
    names = read_classes(root, cfg.classes)
    if names is None:
        n = 2 if binary else max(int(max(values)) + 1, 2)
        names = ["background", *(f"class{i}" for i in range(1, n))]
    where = "data.classes" if cfg.classes is not None else root / "classes.txt"
    for split, pairs in listed.items():
        for (_, _, mpath), (_, _, arr) in zip(pairs, masks[split]):
            bad = arr >= len(names)
            if bad.any():
                y, x = divmod(int(np.argmax(bad)), arr.shape[1])
                raise DataError(f"{mpath}: value {int(arr[y, x])} at (x={x}, y={y}) is outside the "
                                f"{len(names)} classes of {where} (0..{len(names) - 1})")
    return masks, names


def split_by_seed(rows: list, val: float, test: float, seed: int) -> dict[str, list]:
    """A seeded random train/val/test split (at least one image in val and test when there are three)."""
    order = np.random.default_rng(seed).permutation(len(rows))
    n_val, n_test = (int(round(len(rows) * f)) for f in (val, test))
    if len(rows) >= 3:
        n_val, n_test = max(n_val, 1 if val > 0 else 0), max(n_test, 1 if test > 0 else 0)
    if n_val + n_test >= len(rows):
        raise DataError(f"{len(rows)} images cannot be split into train/val/test = "
                        f"{1 - val - test:.2f}/{val:.2f}/{test:.2f}; add images or give DIR/train, DIR/val, DIR/test")
    picked = [rows[i] for i in order]
    return {"train": sorted(picked[n_val + n_test:], key=lambda r: r[0]),
            "val": sorted(picked[:n_val], key=lambda r: r[0]),
            "test": sorted(picked[n_val:n_val + n_test], key=lambda r: r[0])}


def _windows(h: int, w: int, side: int, large: str) -> list[tuple[int, int, int, int]] | tuple[int, int]:
    """Tiles ``(top, left, height, width)`` covering the image, or the resized ``(h, w)``."""
    if large == "resize":
        scale = side / max(h, w)
        return max(1, round(h * scale)), max(1, round(w * scale))
    starts = lambda n: sorted({min(i, max(n - side, 0)) for i in range(0, n, side)})  # noqa: E731
    return [(t, l, min(side, h), min(side, w)) for t in starts(h) for l in starts(w)]


def _objects(mask: np.ndarray, names: Sequence[str]) -> list[dict[str, Any]]:
    """One box per connected region of each class (so the import also serves the detectors)."""
    from scipy import ndimage

    objs = []
    for value in np.unique(mask):
        if value == 0:
            continue
        labels, _ = ndimage.label(mask == value)
        for sl in ndimage.find_objects(labels):
            ys, xs = sl
            objs.append({"class": names[value], "class_id": int(value) - 1, "difficult": False, "landmarks": None,
                         "box": [float(xs.start), float(ys.start), float(xs.stop), float(ys.stop)]})
    return objs


def _samples(rows: list, names: Sequence[str], cfg: MaskImport) -> list:
    """``detect.data.Sample`` per image (or tile), images read lazily and resized or cut as configured."""
    from ..data.images import load_image
    from ..detect.data import Sample

    if cfg.large not in ("resize", "tile"):
        raise DataError(f"data.large must be 'resize' or 'tile', got {cfg.large!r}")
    out = []
    for name, path, mask in rows:
        h, w = mask.shape
        if max(h, w) <= cfg.max_side:
            pieces = [(name, None, mask)]
        elif cfg.large == "resize":
            size = _windows(h, w, cfg.max_side, "resize")
            small = Image.fromarray(mask.astype(np.uint8)).resize(size[::-1], Image.NEAREST)
            pieces = [(name, ("resize", size), np.asarray(small).astype(np.int64))]
        else:
            pieces = [(f"{name}__y{t}_x{l}", ("tile", (t, l, th, tw)), mask[t:t + th, l:l + tw])
                      for t, l, th, tw in _windows(h, w, cfg.max_side, "tile")]
        for pid, op, m in pieces:
            def image(path=path, op=op) -> np.ndarray:
                img = load_image(path, "RGB")
                if op and op[0] == "resize":
                    img = img.resize(op[1][::-1], Image.BILINEAR)
                elif op:
                    t, l, th, tw = op[1]
                    img = img.crop((l, t, l + tw, t + th))
                return np.asarray(img)
            out.append(Sample(id=pid, image=image, objects=_objects(m, names), mask=m.astype(np.uint8),
                              width=m.shape[1], height=m.shape[0], extra={"source_file": str(path)}))
    return out


def prepare_masks(cfg: MaskImport, out: str | Path, name: str = "masks", fingerprint: str | None = None
                  ) -> dict[str, Any]:
    """Validate ``cfg.root`` and write it to ``out`` in the shared layout. Returns dataset.json's content.

    ``dataset.json`` records ``background`` (the name of index 0) besides ``classes`` (the others).

    Raises:
        DataError: any bad input (nothing is written).
    """
    from ..detect.data import write_dataset

    masks, names = scan(cfg)
    splits = masks if "all" not in masks else split_by_seed(masks["all"], cfg.val, cfg.test, cfg.seed)
    samples = {s: _samples(rows, names, cfg) for s, rows in splits.items()}
    return write_dataset(out, samples, names[1:], name=name, source="masks", seed=cfg.seed,
                         extra={"background": names[0], "root": str(Path(cfg.root).resolve()),
                                "split_given": "all" not in masks, "fingerprint": fingerprint})


def import_config(data: Any) -> MaskImport:
    """:class:`MaskImport` from the ``data`` config of ``conf/data/masks.yaml``."""
    if data.get("root") in (None, "???"):
        raise DataError("data.root: not set (data=masks data.root=/path/to/folder)")
    palette = data.get("palette")
    classes = data.get("classes")
    return MaskImport(root=str(data.root), classes=None if classes is None else list(classes),
                      palette=None if palette is None else [list(c) for c in palette],
                      max_side=int(data.max_side), large=str(data.large), val=float(data.split.val),
                      test=float(data.split.test), seed=int(data.split.seed))


def fingerprint(cfg: MaskImport) -> str:
    """A hash of the import settings and of every file's name, size and modification time under the root."""
    import hashlib

    h = hashlib.sha256(repr(cfg).encode())
    root = Path(cfg.root)
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def prepare_from_config(cfg: Any) -> dict[str, Any]:
    """``prepare data=masks``: import ``cfg.data.root`` into ``cfg.paths.prepared``."""
    imp = import_config(cfg.data)
    meta = prepare_masks(imp, cfg.paths.prepared, name=cfg.data.name, fingerprint=fingerprint(imp))
    return meta


def ensure_prepared(cfg: Any) -> None:
    """For ``data=masks``, (re)import the folder when the prepared copy is missing or out of date."""
    import json

    if cfg.data.get("source") != "masks":
        return
    imp = import_config(cfg.data)
    meta_path = Path(cfg.paths.prepared) / "dataset.json"
    if meta_path.is_file() and json.loads(meta_path.read_text()).get("fingerprint") == fingerprint(imp):
        return
    prepare_from_config(cfg)
