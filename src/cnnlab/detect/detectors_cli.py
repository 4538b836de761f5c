"""``cnnlab detect`` for trained detectors (YOLO, Faster R-CNN, R-CNN mini): read, letterbox, detect, map back."""

from __future__ import annotations

from pathlib import Path


class DetectError(Exception):
    """A bad request or input file (one clear line, exit status 1)."""


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


def detector_kind(ckpt: str | Path, method: str) -> str:
    """The family to run: ``method``, or for ``auto`` the checkpoint's (a detector's ``kind``, else ``sliding``).

    Raises:
        DetectError: ``method`` names a detector family the checkpoint is not, or the checkpoint is
            neither a detector's nor a sliding-window classifier's (e.g. an image classifier's).
    """
    from ..checkpoint import read

    from .checkpoint import families, load_detector

    if method == "sliding":
        return method
    path = Path(ckpt)
    obj = read(path, "detector checkpoint")  # missing, truncated, refused: one-line errors
    hp = (obj.get("hyper_parameters") or {}) if isinstance(obj, dict) else {}
    kind = hp.get("kind")
    if kind in families():
        if method not in ("auto", kind):
            raise DetectError(f"{path}: a {kind} checkpoint, not {method}")
        return kind
    if method == "auto" and {"sizes", "stride", "normalization"} <= set(hp):
        return "sliding"  # a train_windows checkpoint
    try:
        load_detector(path)
    except ValueError as err:
        raise DetectError(f"{err} or a train_windows checkpoint") from None
    raise DetectError(f"{path}: not a detector checkpoint")


def detect_with_detector(paths: list[Path], ckpt: Path, score: float | None, iou: float | None) -> list[dict]:
    """Detections of every image (decoded first, so a bad file stops everything before any output).

    Returns:
        One ``{"image", "width", "height", "method", "objects": [{class, class_id, score, box}], "_array"}``
        per image; boxes in the original image's pixels.
    """
    import torch
    from torchvision import tv_tensors

    from .checkpoint import load_detector
    from .transforms import Letterbox, unletterbox

    images = [read_image(p) for p in paths]
    module = load_detector(ckpt)
    hp = module.hparams
    score = float(hp.score) if score is None else score
    iou = float(hp.iou) if iou is None else iou
    letterbox = Letterbox(int(hp.input_size))
    results = []
    for path, arr in zip(paths, images):
        img = tv_tensors.Image(torch.from_numpy(arr.copy()).permute(2, 0, 1))
        empty = {"boxes": tv_tensors.BoundingBoxes(torch.zeros(0, 4), format="XYXY", canvas_size=arr.shape[:2])}
        x, t = letterbox(img, empty)
        pred = module.detect([x.float() / 255], score, iou)[0]
        boxes = unletterbox(pred["boxes"], t["letterbox"], arr.shape[:2])
        objs = [{"class": hp.classes[int(c)], "class_id": int(c), "score": round(float(s), 4),
                 "box": [round(float(v), 2) for v in b]} for b, c, s in zip(boxes, pred["labels"], pred["scores"])]
        results.append({"image": str(path), "width": arr.shape[1], "height": arr.shape[0], "method": hp.kind,
                        "objects": objs, "_array": arr})
    return results
