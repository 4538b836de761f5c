"""``cnnlab predict CKPT IMAGE|DIR``: classify new images with a trained classifier checkpoint.

The images are decoded and transformed exactly as the evaluate stage does it (EXIF orientation,
>8-bit scaling, the checkpoint's channels, input size and normalisation). The top-k classes of
each image are printed and written to a CSV, one row per image::

    path,top1,prob1,top2,prob2,...

A DIR is searched recursively, in sorted order; hidden files are ignored and files without an
image extension are skipped with a note on stderr. A file that cannot be decoded, a checkpoint
that is not a classifier's, or a missing path is one error line and exit status 1, with no CSV.
"""

from __future__ import annotations

import argparse
import csv
import sys
import zipfile
from pathlib import Path
from typing import Sequence


def find_images(target: Path) -> tuple[list[Path], list[Path]]:
    """``(images, skipped)`` for a file or a folder (recursive, sorted, hidden files ignored).

    Raises:
        FileNotFoundError: ``target`` does not exist.
        DataError: a file given by name is not an image, or a folder holds no image.
    """
    from .data.images import IMAGE_EXTS, DataError

    if target.is_file():
        if target.suffix.lower() not in IMAGE_EXTS:
            raise DataError(f"{target}: not an image file (extension {target.suffix!r})")
        return [target], []
    if not target.is_dir():
        raise FileNotFoundError(f"no such image or folder: {target}")
    files = sorted(f for f in target.rglob("*") if f.is_file()
                   and not any(p.startswith(".") for p in f.relative_to(target).parts))
    images = [f for f in files if f.suffix.lower() in IMAGE_EXTS]
    if not images:
        raise DataError(f"{target}: no image files (extensions {', '.join(sorted(IMAGE_EXTS))})")
    return images, [f for f in files if f.suffix.lower() not in IMAGE_EXTS]


def predict_images(ckpt: str | Path, paths: Sequence[Path], k: int = 5, batch_size: int = 64
                   ) -> tuple[list[str], list[list[tuple[str, float]]], list[str]]:
    """The top-``k`` ``(class, probability)`` of each image, most probable first.

    Returns:
        ``(class names, per-image top-k lists, notes)``: notes name each image whose decoding
        changed it (e.g. "photo.jpg: EXIF orientation 6 applied (rotated 90° clockwise)").

    Raises:
        FileNotFoundError, ValueError: the checkpoint is missing or not a classifier's.
        DataError: an image cannot be decoded.
    """
    import torch
    from torchvision.transforms import v2

    from .data.images import read_image
    from .data.prepared_split import eval_transform
    from .tasks.classifier import load_checkpoint

    ckpt = Path(ckpt)
    if ckpt.is_file() and not zipfile.is_zipfile(ckpt):
        raise ValueError(f"{ckpt}: not a checkpoint (torch.save writes a zip archive; this file is not one)")
    model, hp = load_checkpoint(ckpt)
    classes = list(hp["classes"])
    k = max(1, min(k, len(classes)))
    mode = "L" if hp["in_chans"] == 1 else "RGB"
    transform = eval_transform(hp["input_size"], hp["normalization"]["mean"], hp["normalization"]["std"])
    tops, notes = [], []
    with torch.inference_mode():
        for start in range(0, len(paths), batch_size):
            batch = []
            for path in paths[start:start + batch_size]:
                img, changes = read_image(path, mode)
                notes += [f"{path}: {c}" for c in changes]
                batch.append(transform(v2.functional.pil_to_tensor(img)))
            probs = torch.softmax(model(torch.stack(batch)), dim=1)
            values, idx = probs.topk(k, dim=1)
            tops += [[(classes[i], float(p)) for i, p in zip(row_i, row_p)]
                     for row_i, row_p in zip(idx.tolist(), values.tolist())]
    return classes, tops, notes


def write_csv(path: Path, names: Sequence[str], tops: Sequence[Sequence[tuple[str, float]]]) -> None:
    """The predictions as CSV, written atomically."""
    from .io import atomic_path

    k = len(tops[0])
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", *(f"{c}{i}" for i in range(1, k + 1) for c in ("top", "prob"))])
        for name, top in zip(names, tops):
            w.writerow([name, *(x for c, p in top for x in (c, f"{p:.6f}"))])


def default_out(target: Path) -> Path:
    """``photo.jpg`` → ``photo.predictions.csv`` beside it; ``photos/`` → ``photos.predictions.csv``."""
    target = target.resolve()
    return target.with_name(f"{target.stem if target.is_file() else target.name}.predictions.csv")


def run(args: argparse.Namespace) -> int:
    """The ``predict`` subcommand; known failures are one line on stderr and exit status 1."""
    from .data.images import DataError

    if args.k < 1 or args.batch_size < 1:
        print(f"cnnlab predict: error: -k and --batch-size must be >= 1, got {args.k} and {args.batch_size}",
              file=sys.stderr)
        return 2
    target = Path(args.target)
    try:
        images, skipped = find_images(target)
        _, tops, notes = predict_images(args.ckpt, images, k=args.k, batch_size=args.batch_size)
    except (DataError, FileNotFoundError, ValueError, KeyError) as err:
        print(f"cnnlab predict: error: {err}", file=sys.stderr)
        return 1
    for f in skipped:
        print(f"skipped {f}: not an image file", file=sys.stderr)
    for note in notes:
        print(f"changed {note}", file=sys.stderr)
    base = target if target.is_dir() else target.parent
    names = [p.relative_to(base).as_posix() for p in images]
    for name, top in zip(names, tops):
        print(f"{name}: " + ", ".join(f"{c} {p:.3f}" for c, p in top))
    out = Path(args.out) if args.out else default_out(target)
    write_csv(out, names, tops)
    print(f"wrote {out} ({len(names)} image{'s' if len(names) != 1 else ''}, top {len(tops[0])})", file=sys.stderr)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Declare ``cnnlab predict``."""
    p = subparsers.add_parser(
        "predict", help="classify images with a trained classifier checkpoint: top-k classes, and a CSV",
        description="Print the top-k classes of each image and write them to a CSV (path,top1,prob1,...). "
                    "Images are read as the evaluate stage reads them, with the checkpoint's input size "
                    "and normalisation.")
    p.add_argument("ckpt", help="a classifier checkpoint, e.g. models/<data>/<model>/seed0/best.ckpt")
    p.add_argument("target", metavar="IMAGE|DIR", help="an image, or a folder searched recursively")
    p.add_argument("-k", type=int, default=5, help="classes to list per image (at most the number of classes)")
    p.add_argument("--out", metavar="CSV", help="the CSV (default: <IMAGE stem>.predictions.csv or "
                   "<DIR>.predictions.csv beside it)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    p.set_defaults(handler=run)
