"""``cnnlab segment IMAGE... --model CKPT``: per-pixel classes with a trained segmenter."""

from __future__ import annotations

import argparse
import sys


def _segment(args: argparse.Namespace) -> int:
    from ..data.images import DataError
    from .infer import segment_images

    try:
        results = segment_images(args.images, args.model, args.out_dir)
    except (DataError, FileNotFoundError, ValueError) as err:
        print(f"cnnlab segment: error: {err}", file=sys.stderr)
        return 1
    for mask, over, shares in results:
        classes = ", ".join(f"{c} {100 * f:.1f}%" for c, f in sorted(shares.items(), key=lambda kv: -kv[1]))
        print(f"{mask}  {over}  {classes}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "segment", help="semantic segmentation of images with a trained segmenter (train_segmenter)",
        description="Predict each pixel's class. Writes <stem>.mask.png (an indexed PNG: pixel value = class "
                    "index, palette = class colours) and <stem>.overlay.png, and prints each class's share.")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--model", required=True, metavar="CKPT",
                   help="a train_segmenter checkpoint, e.g. models/segmentation/scenes/unet/best.ckpt")
    p.add_argument("--out-dir", metavar="DIR", help="where to write (default: beside each image)")
    p.set_defaults(handler=_segment)
