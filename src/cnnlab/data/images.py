"""Scanning and reading image folders (one sub-folder per class or per person), with clear errors.

Policy for bad files (documented in the README): a file with an image extension that cannot be
decoded, or a file without an image extension inside a class folder, is an error that names the
file; nothing is written. Files that are not used are *skipped and reported by name*: a file
directly in the root (outside any class folder) and a hidden file (``.DS_Store``, ``.gitkeep``).

Decoding never changes an image silently: :func:`read_image` returns, beside the image, a note
for every change beyond the configured channel conversion: EXIF orientation applied, more than 8
bits per channel scaled to 8, an alpha channel dropped, only the first frame of an animation kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".pgm", ".ppm", ".pbm", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
TINY_SIDE = 8  # an image with a side shorter than this is reported (usually a broken thumbnail or pixel)

log = logging.getLogger("cnnlab")

_ORIENTATION = {2: "mirrored", 3: "rotated 180°", 4: "flipped", 5: "transposed", 6: "rotated 90° clockwise",
                7: "transversed", 8: "rotated 90° anticlockwise"}


class DataError(ValueError):
    """Bad input data; the message names the offending path."""


@dataclass
class FolderScan:
    """What :func:`scan_folder` found.

    Attributes:
        items: ``(path, label)`` of every image inside a class folder, sorted.
        skipped: ``(path, reason)`` of every file not used, sorted.
    """

    items: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def scan_folder(root: str | Path) -> FolderScan:
    """List the images of ``root/<label>/...`` (sub-folders of a class folder included).

    Raises:
        DataError: the root is missing or has no class folders, a class folder is empty, or a
            file in a class folder is not an image.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data root not found: {root} (set data.root=/path/to/folder)")
    scan = FolderScan()
    entries = sorted(root.iterdir())
    for p in entries:
        if p.is_file():
            reason = ("hidden file" if p.name.startswith(".") else
                      "image outside any class folder" if p.suffix.lower() in IMAGE_EXTS else
                      "not in a class folder")
            scan.skipped.append((p, reason))
    classes = [p for p in entries if p.is_dir() and not p.name.startswith(".")]
    if not classes:
        raise DataError(f"{root}: no class sub-folders (expected {root}/<label>/<image files>)")
    for cls in classes:
        files = sorted(f for f in cls.rglob("*") if f.is_file())
        hidden = [f for f in files if any(part.startswith(".") for part in f.relative_to(cls).parts)]
        scan.skipped.extend((f, "hidden file") for f in hidden)
        files = [f for f in files if f not in set(hidden)]
        not_images = [f for f in files if f.suffix.lower() not in IMAGE_EXTS]
        if not_images:
            raise DataError(f"{not_images[0]}: not an image file (extension {not_images[0].suffix!r}); "
                            f"remove it or move it out of {root}")
        if not files:
            raise DataError(f"{cls}: empty class folder (no images)")
        scan.items.extend((f, cls.name) for f in files)
    scan.skipped.sort()
    return scan


def scan_image_folder(root: str | Path) -> list[tuple[Path, str]]:
    """``(path, label)`` for every image under ``root/<label>/``, sorted; skipped files are logged.

    Raises:
        DataError: as :func:`scan_folder`.
    """
    scan = scan_folder(root)
    for path, reason in scan.skipped:
        log.warning("skipped %s: %s", path, reason)
    return scan.items


def _to_8bit(img: Image.Image) -> tuple[Image.Image, str | None]:
    """Scale a grey image of more than 8 bits ("I;16*", "I", "F") to "L"; 8-bit modes pass through."""
    if img.mode.startswith("I;16"):
        arr, scale, what = np.asarray(img, dtype=np.float64), 65535.0, "16-bit"
        lo = 0.0
    elif img.mode == "I":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = 0.0, float(arr.max(initial=0))
        # Pillow decodes 16-bit PNG/PGM/TIFF into "I" scaled to 0..65535; wider integers are rare.
        scale, what = (65535.0, "16-bit") if hi <= 65535 and arr.min(initial=0) >= 0 else (None, "32-bit")
        if scale is None:
            lo, scale = float(arr.min()), max(hi - float(arr.min()), 1.0)
            what = f"32-bit (range {lo:g}..{hi:g} stretched)"
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        if lo >= 0 and hi <= 1:
            lo, scale, what = 0.0, 1.0, "floating-point [0, 1]"
        else:
            scale, what = max(hi - lo, 1e-12), f"floating-point (range {lo:g}..{hi:g} stretched)"
    else:
        return img, None
    out = np.clip(np.rint((np.nan_to_num(arr) - lo) * (255.0 / scale)), 0, 255).astype(np.uint8)
    return Image.fromarray(out, "L"), f"{what} scaled to 8 bits"


def _wide_colour(img: Image.Image) -> bool:
    """Whether a colour image is stored with 16 bits per channel (read before decoding)."""
    if img.mode not in ("RGB", "RGBA") or not img.tile:
        return False
    args = img.tile[0].args
    rawmode = args[0] if isinstance(args, tuple) else args
    return isinstance(rawmode, str) and ";16" in rawmode


def read_image(path: str | Path, mode: str) -> tuple[Image.Image, list[str]]:
    """Decode an image fully and convert it to ``mode`` ("L" or "RGB"), saying what changed.

    The image is shown as a viewer shows it (EXIF orientation applied); more than 8 bits per
    channel are scaled to 8, never clipped; transparency is dropped (the colour under it is kept).

    Returns:
        ``(image, notes)``: one note per change, e.g. ``"EXIF orientation 6 applied (rotated 90°
        clockwise)"``; empty when the file's own pixels were used as they are.

    Raises:
        DataError: the file cannot be decoded.
    """
    notes: list[str] = []
    try:
        with Image.open(path) as img:
            wide = _wide_colour(img)
            img.load()
            if wide:  # Pillow's decoder keeps the high byte of each 16-bit sample: scaled, not clipped
                notes.append("16-bit scaled to 8 bits")
            frames = getattr(img, "n_frames", 1)
            if frames > 1:
                notes.append(f"first of {frames} frames kept")
            orientation = img.getexif().get(0x0112, 1)
            if orientation in _ORIENTATION:
                img = ImageOps.exif_transpose(img)
                notes.append(f"EXIF orientation {orientation} applied ({_ORIENTATION[orientation]})")
            if img.mode == "P" and "transparency" in img.info:
                img = img.convert("RGBA")
            img, scaled = _to_8bit(img)
            if scaled:
                notes.append(scaled)
            if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") and img.getextrema()[-1][0] < 255:
                notes.append("transparency dropped")
            return img.convert(mode), notes
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: cannot read image ({err})") from err


def load_image(path: str | Path, mode: str) -> Image.Image:
    """The image of :func:`read_image` without its notes.

    Raises:
        DataError: the file cannot be decoded.
    """
    return read_image(path, mode)[0]
