"""``cnnlab detect IMAGE... --model CKPT``: a trained YOLO / Faster R-CNN / R-CNN-mini on photos.

Every image is decoded before anything is written, so a bad file leaves no partial output. For
each image the boxes (pixels of the original image), classes and scores are printed, and
``<out>/<stem>.json`` and ``<out>/<stem>.png`` (boxes drawn) are written atomically.
"""

from __future__ import annotations

import argparse
from pathlib import Path


class DetectError(Exception):
    """A bad request or input file (one clear line, exit status 2)."""


def read_image(path: Path):
    """``[H, W, 3]`` uint8 RGB; :class:`DetectError` naming the file if it is missing, empty or not an image."""
    import numpy as np
    from PIL import Image

    if not path.is_file():
        raise DetectError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DetectError(f"{path}: empty file, not an image")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as err:
        raise DetectError(f"{path}: not an image Pillow can read ({type(err).__name__})") from None


def detect_images(paths: list[Path], ckpt: Path, score: float | None, iou: float | None, method: str = "auto"):
    """Detections of every image as ``[(path, image, [{"box", "class", "score"}...])]``, in original pixels."""
    import torch
    from torchvision import tv_tensors

    from .checkpoint import load_detector
    from .transforms import Letterbox, unletterbox

    images = [read_image(p) for p in paths]
    try:
        module = load_detector(ckpt)
    except (FileNotFoundError, ValueError) as err:
        raise DetectError(str(err)) from None
    hp = module.hparams
    if method != "auto" and method != hp.kind:
        raise DetectError(f"{ckpt}: a {hp.kind} checkpoint, not {method}")
    score = float(hp.score) if score is None else score
    iou = float(hp.iou) if iou is None else iou
    box_lb = Letterbox(int(hp.input_size))
    results = []
    for path, arr in zip(paths, images):
        img = tv_tensors.Image(torch.from_numpy(arr.copy()).permute(2, 0, 1))
        dummy = {"boxes": tv_tensors.BoundingBoxes(torch.zeros(0, 4), format="XYXY", canvas_size=arr.shape[:2])}
        x, t = box_lb(img, dummy)
        pred = module.detect([x.float() / 255], score, iou)[0]
        boxes = unletterbox(pred["boxes"], t["letterbox"], arr.shape[:2])
        dets = [{"box": [round(float(v), 2) for v in b], "class": hp.classes[int(c)], "class_id": int(c),
                 "score": round(float(s), 4)} for b, c, s in zip(boxes, pred["labels"], pred["scores"])]
        results.append((path, arr, dets))
    return results, module


def run(args: argparse.Namespace) -> int:
    """The ``cnnlab detect`` handler; returns the exit code."""
    from ..io import atomic_path, write_json
    from .preview import draw_objects

    results, module = detect_images([Path(p) for p in args.images], Path(args.model), args.score, args.iou, args.method)
    out = Path(args.out)
    for path, arr, dets in results:
        print(f"{path}: " + (f"{len(dets)} object(s)" if dets else "no objects"))
        for d in dets:
            x1, y1, x2, y2 = d["box"]
            print(f"  {d['class']:<12} {d['score']:.3f}  [{x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}]")
        write_json(out / f"{path.stem}.json", {"image": str(path), "detector": module.hparams.kind,
                                               "model": str(args.model), "objects": dets})
        scale = max(1, round(384 / max(arr.shape[:2])))
        pic = draw_objects(arr, [d["box"] for d in dets], [d["class"] for d in dets], [d["class_id"] for d in dets],
                           scores=[d["score"] for d in dets], scale=scale)
        with atomic_path(out / f"{path.stem}.png") as tmp:
            pic.save(tmp, format="PNG")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``cnnlab detect`` for trained detectors."""
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any format Pillow reads)")
    p.add_argument("--model", required=True, metavar="CKPT", help="a detector checkpoint (train_detector's best.ckpt)")
    p.add_argument("--method", choices=("auto", "yolo", "faster_rcnn", "rcnn_mini"), default="auto",
                   help="the detector family; auto: the checkpoint's (default)")
    p.add_argument("--score", type=float, help="score threshold (default: the checkpoint's, 0.6 as the course's)")
    p.add_argument("--iou", type=float, help="per-class NMS IoU threshold (default: the checkpoint's, 0.5)")
    p.add_argument("--out", default="detections", metavar="DIR",
                   help="folder for <stem>.json and <stem>.png (default: ./detections)")
