"""Scanning and reading image folders (one sub-folder per class or per person), with clear errors.

Policy for bad files (documented in the README): a file with an image extension that cannot be
decoded, or a file without an image extension, is an error that names the file; nothing is
written. Hidden files (``.DS_Store``, ``.gitkeep``) are ignored.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".pgm", ".ppm", ".pbm", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


class DataError(ValueError):
    """Bad input data; the message names the offending path."""


def scan_image_folder(root: str | Path) -> list[tuple[Path, str]]:
    """List ``(path, label)`` for every image under ``root/<label>/``, sorted.

    Raises:
        DataError: the root is missing or has no class folders, a class folder is empty, or a
            file is not an image.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data root not found: {root} (set data.root=/path/to/folder)")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root}: no class sub-folders (expected {root}/<label>/<image files>)")
    items: list[tuple[Path, str]] = []
    for cls in classes:
        files = sorted(f for f in cls.rglob("*") if f.is_file() and not f.name.startswith("."))
        not_images = [f for f in files if f.suffix.lower() not in IMAGE_EXTS]
        if not_images:
            raise DataError(f"{not_images[0]}: not an image file (extension {not_images[0].suffix!r}); "
                            f"remove it or move it out of {root}")
        if not files:
            raise DataError(f"{cls}: empty class folder (no images)")
        items.extend((f, cls.name) for f in files)
    return items


def load_image(path: str | Path, mode: str) -> Image.Image:
    """Decode an image fully and convert it to ``mode`` ("L" or "RGB").

    Raises:
        DataError: the file cannot be decoded.
    """
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert(mode)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: cannot read image ({err})") from err
