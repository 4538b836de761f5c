"""Square crops of a prepared detection split: single objects, background, faces (seeded).

The localiser, the landmark regressor and the window classifier all train on crops cut from the
scenes. A crop is a square window (it may reach past the border; outside pixels replicate the
edge) resized to ``size × size``. Its targets are in the course's box convention: the crop's
top-left is (0, 0) and its bottom-right (1, 1); ``(b_x, b_y)`` is the box's centre and
``(b_h, b_w)`` its height and width.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from .data import read_split


@dataclass
class Crops:
    """Crops and their targets (``N`` crops; background crops have ``class_id = -1``).

    Attributes:
        images: ``[N, size, size, 3]`` uint8.
        class_id: ``[N]`` int64, ``-1`` for background.
        box: ``[N, 4]`` float32 ``(b_x, b_y, b_h, b_w)`` in crop units (zeros for background).
        landmarks: ``[N, 5, 2]`` float32 in crop units, NaN where absent.
        source: ``[N, 5]`` float64: image index and the crop ``(x0, y0, side, difficult)`` in it.
    """

    images: np.ndarray
    class_id: np.ndarray
    box: np.ndarray
    landmarks: np.ndarray
    source: np.ndarray

    def __len__(self) -> int:
        return len(self.class_id)


def cut(image: np.ndarray, x0: float, y0: float, side: float, size: int) -> np.ndarray:
    """The square ``[x0, x0 + side) × [y0, y0 + side)`` of ``image`` resized to ``size`` (edge-replicated)."""
    import cv2

    s = size / side
    m = np.array([[s, 0, -x0 * s + 0.5 * s - 0.5], [0, s, -y0 * s + 0.5 * s - 0.5]])
    flags = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(image, m, (size, size), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def _overlap(box: Sequence[float], x0: float, y0: float, side: float) -> float:
    """Fraction of ``box``'s area inside the square."""
    iw = max(0.0, min(box[2], x0 + side) - max(box[0], x0))
    ih = max(0.0, min(box[3], y0 + side) - max(box[1], y0))
    return iw * ih / ((box[2] - box[0]) * (box[3] - box[1]))


def _to_crop(box: Sequence[float], x0: float, y0: float, side: float) -> list[float]:
    x1, y1, x2, y2 = box
    return [((x1 + x2) / 2 - x0) / side, ((y1 + y2) / 2 - y0) / side, (y2 - y1) / side, (x2 - x1) / side]


def object_crops(root: str | Path, split: str, size: int, seed: int, *, context: tuple[float, float] = (1.2, 2.0),
                 jitter: float = 0.2, max_other: float = 0.15, background: float = 0.3, kinds: Sequence[int] | None = None,
                 near_negatives: bool = False) -> Crops:
    """One crop per object that shows it alone (others at most ``max_other`` inside), plus background.

    Args:
        context: crop side as a multiple of the object's longer side (uniform in this range).
        jitter: how far the object's centre may move from the crop's, as a fraction of the side
            (the object stays inside the crop).
        max_other: largest fraction of another object's box the crop may hold; objects with no
            such crop within 20 tries are skipped.
        background: background crops per object crop.
        kinds: keep only objects of these class ids (e.g. faces for the landmark regressor).
        near_negatives: background crops may also be windows that miss an object, off-centre or
            at the wrong scale (IoU < 0.3 with every box): the hard negatives of a window classifier.
    """
    rng = np.random.default_rng([seed, {"train": 0, "val": 1, "test": 2}.get(split, 3)])
    root = Path(root)
    out: dict[str, list] = {"images": [], "class_id": [], "box": [], "landmarks": [], "source": []}
    for k, rec in enumerate(read_split(root, split)):
        img = np.asarray(Image.open(root / split / rec["file"]).convert("RGB"))
        boxes = [o["box"] for o in rec["objects"]]
        n_obj = 0
        for j, obj in enumerate(rec["objects"]):
            if kinds is not None and obj["class_id"] not in kinds:
                continue
            x1, y1, x2, y2 = obj["box"]
            for _ in range(20):
                side = max(x2 - x1, y2 - y1) * rng.uniform(*context)
                free = side - np.array([x2 - x1, y2 - y1])
                off = rng.uniform(-jitter, jitter, 2) * side
                cx0 = np.clip((x1 + x2) / 2 - side / 2 + off[0], x2 - side, x1)
                cy0 = np.clip((y1 + y2) / 2 - side / 2 + off[1], y2 - side, y1)
                if free.min() >= 0 and all(_overlap(b, cx0, cy0, side) <= max_other
                                           for i, b in enumerate(boxes) if i != j):
                    break
            else:
                continue
            marks = np.full((5, 2), np.nan)
            if obj.get("landmarks") is not None:
                marks = (np.asarray(obj["landmarks"]) + 0.5 - [cx0, cy0]) / side  # pixel index → edge units
            _add(out, cut(img, cx0, cy0, side, size), obj["class_id"], _to_crop(obj["box"], cx0, cy0, side),
                 marks, [k, cx0, cy0, side, float(obj.get("difficult", False))])
            n_obj += 1
        want = rng.binomial(max(n_obj, 1) * 4, background / 4) if background else 0
        for _ in range(want * 10):
            if want == 0:
                break
            if near_negatives and boxes and rng.random() < 0.5:
                b = boxes[int(rng.integers(len(boxes)))]
                side = max(b[2] - b[0], b[3] - b[1]) * rng.uniform(0.5, 2.5)
                x0 = (b[0] + b[2]) / 2 - side / 2 + rng.uniform(-0.8, 0.8) * side
                y0 = (b[1] + b[3]) / 2 - side / 2 + rng.uniform(-0.8, 0.8) * side
                if any(_window_iou(bb, x0, y0, side) >= 0.3 for bb in boxes):
                    continue
            else:
                side = rng.uniform(16, img.shape[0] / 2)
                x0, y0 = rng.uniform(0, img.shape[1] - side), rng.uniform(0, img.shape[0] - side)
                if any(_overlap(bb, x0, y0, side) > 0.1 for bb in boxes):
                    continue
            _add(out, cut(img, x0, y0, side, size), -1, [0.0] * 4, np.full((5, 2), np.nan), [k, x0, y0, side, 0.0])
            want -= 1
    return Crops(np.stack(out["images"]) if out["images"] else np.zeros((0, size, size, 3), np.uint8),
                 np.asarray(out["class_id"], np.int64), np.asarray(out["box"], np.float32).reshape(-1, 4),
                 np.asarray(out["landmarks"], np.float32).reshape(-1, 5, 2), np.asarray(out["source"]).reshape(-1, 5))


def _window_iou(b: Sequence[float], x0: float, y0: float, side: float) -> float:
    inter = _overlap(b, x0, y0, side) * (b[2] - b[0]) * (b[3] - b[1])
    return inter / ((b[2] - b[0]) * (b[3] - b[1]) + side * side - inter)


def _add(out: dict, image, class_id, box, marks, source) -> None:
    out["images"].append(image)
    out["class_id"].append(class_id)
    out["box"].append(box)
    out["landmarks"].append(marks)
    out["source"].append(source)


def normalisation(images: np.ndarray) -> dict[str, list[float]]:
    """Per-channel mean and std of ``[N, H, W, 3]`` uint8 crops, in [0, 1] units."""
    x = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
    return {"mean": x.mean(0).round(6).tolist(), "std": np.maximum(x.std(0), 1e-6).round(6).tolist()}


def to_tensor(images: np.ndarray, norm: dict[str, list[float]]):
    """``[N, H, W, 3]`` uint8 → normalised float ``[N, 3, H, W]``."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(norm["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(norm["std"]).view(1, -1, 1, 1)
    return (x - mean) / std
