"""``cnnlab detect IMAGE... --model CKPT [--method ...]``: objects in photos, as JSON and a picture.

``sliding`` runs a ``train_windows`` checkpoint's convolutional twin over the image at each of its
window sizes, keeps windows scoring above ``--score`` and applies per-class NMS at ``--iou``.
``yolo``, ``faster_rcnn`` and ``rcnn_mini`` run a ``train_detector`` checkpoint on the letterboxed
image and map the boxes back to the original pixels (:mod:`.detectors_cli`). ``auto`` (the
default) takes the family from the checkpoint. Known failures (missing, empty or unreadable
image, a checkpoint of another kind) are one line on stderr with exit status 1, and nothing is
written: every image is read before any output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

METHODS = ("auto", "sliding", "yolo", "faster_rcnn", "rcnn_mini")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("detect", help="find objects in images (YOLO, Faster R-CNN, R-CNN mini, sliding "
                              "windows); write JSON and a picture",
                              description="Print each object's class, score and box (x1 y1 x2 y2 pixels), write "
                                          "<stem>.boxes.json and <stem>.boxes.png (or --out-dir).")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--method", choices=METHODS, default="auto", help="detector family (default: the checkpoint's)")
    p.add_argument("--model", required=True, metavar="CKPT", help="a train_detector or train_windows best.ckpt "
                   "(e.g. models/scenes/yolo/best.ckpt, models/scenes/windows/course/best.ckpt)")
    p.add_argument("--score", type=float, help="score threshold (default: the checkpoint's: 0.6 for YOLO as in "
                   "the course's yolo_filter_boxes, windows.threshold for sliding windows)")
    p.add_argument("--iou", type=float, help="per-class NMS IoU (default: the checkpoint's, 0.5)")
    p.add_argument("--sizes", type=float, nargs="+", metavar="PX", help="window sides in pixels (default: the checkpoint's)")
    p.add_argument("--out-dir", metavar="DIR", help="where the JSON and picture go (default: beside each image)")
    p.set_defaults(handler=run)


def detect_image(module, path: Path, score: float | None = None, iou: float | None = None,
                 sizes=None) -> dict:
    """Detections of one image file: ``{"image", "width", "height", "objects": [{class, score, box}]}``."""
    import numpy as np
    import torch

    from ..data.images import load_image
    from .windows import conv_windows, detections, to_convolutional

    hp = module.hparams
    arr = np.asarray(load_image(path, "RGB"))
    mean = torch.tensor(hp.normalization["mean"]).view(-1, 1, 1)
    std = torch.tensor(hp.normalization["std"]).view(-1, 1, 1)
    x = (torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255 - mean) / std
    win = conv_windows(to_convolutional(module.model), x, sizes or hp.sizes, hp.stride)
    d = detections(win, len(hp.classes), hp.threshold if score is None else score, hp.iou if iou is None else iou)
    objs = [{"class": hp.classes[int(k)], "class_id": int(k), "score": round(float(s), 4),
             "box": [round(float(v), 2) for v in b]} for b, s, k in zip(d["boxes"], d["scores"], d["labels"])]
    return {"image": str(path), "width": arr.shape[1], "height": arr.shape[0], "objects": objs, "_array": arr}


def run(args: argparse.Namespace) -> int:
    from ..data.images import DataError
    from .detectors_cli import DetectError, detect_with_detector, detector_kind
    from .tasks import load

    try:
        kind = detector_kind(args.model, args.method)
        if kind != "sliding":
            results = detect_with_detector([Path(p) for p in args.images], Path(args.model), args.score, args.iou)
        else:
            module = load(args.model, "windows")
            results = [detect_image(module, Path(p), args.score, args.iou, args.sizes) for p in args.images]
            for res in results:
                res["method"] = "sliding"
    except (FileNotFoundError, ValueError, DataError, DetectError) as err:
        print(f"cnnlab detect: error: {err}", file=sys.stderr)
        return 1
    write_results(results, args)
    return 0


def write_results(results: list[dict], args: argparse.Namespace) -> None:
    """Print every image's objects; write ``<stem>.boxes.json`` and ``<stem>.boxes.png`` atomically."""
    from ..io import atomic_path, write_json
    from .preview import draw_objects

    for res in results:
        path = Path(res["image"])
        out = Path(args.out_dir) if args.out_dir else path.parent
        arr = res.pop("_array")
        objs = res["objects"]
        print(f"{path}: " + ("no objects" if not objs else f"{len(objs)} object(s)"))
        for o in objs:
            print(f"  {o['class']:<10} {o['score']:.2f}  " + " ".join(f"{v:.1f}" for v in o["box"]))
        res["model"] = str(args.model)
        write_json(out / f"{path.stem}.boxes.json", res)
        scale = max(1, round(320 / max(arr.shape[:2])))
        pic = draw_objects(arr, [o["box"] for o in objs], [o["class"] for o in objs], [o["class_id"] for o in objs],
                           scores=[o["score"] for o in objs], scale=scale)
        with atomic_path(out / f"{path.stem}.boxes.png") as tmp:
            pic.save(tmp, format="PNG")
