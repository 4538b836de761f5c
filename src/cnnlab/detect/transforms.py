"""Detector inputs: letterbox resizing and augmentations that move the boxes with the image.

Everything is torchvision transforms v2 on ``tv_tensors``: the image, its ``BoundingBoxes``
and its ``Mask`` go through one transform call, so a flip, a scale or a crop moves them
together. Objects pushed (mostly) out of the picture are dropped by ``SanitizeBoundingBoxes``,
together with their label and ``difficult`` flag.
"""

from __future__ import annotations

from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

FILL = 114  # grey padding, as the YOLO implementations use


class Letterbox:
    """Resize keeping the aspect ratio so that the longer side is ``size``, then pad to a square.

    The padding is centred. The target gains ``letterbox = [scale_x, scale_y, pad_left, pad_top]``
    so that :func:`unletterbox` maps predicted boxes back onto the original image.
    """

    def __init__(self, size: int, fill: int = FILL):
        self.size, self.fill = size, fill

    def __call__(self, image: torch.Tensor, target: dict[str, Any] | None = None):
        h, w = image.shape[-2:]
        s = min(self.size / h, self.size / w)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        left, top = (self.size - nw) // 2, (self.size - nh) // 2
        pad = [left, top, self.size - nw - left, self.size - nh - top]
        image = F.pad(F.resize(image, [nh, nw], antialias=True), pad, fill=self.fill)
        if target is None:
            return image, None
        target = dict(target)
        for key in ("boxes", "mask"):
            if key in target:
                target[key] = F.pad(F.resize(target[key], [nh, nw]), pad, fill=0)
        target["letterbox"] = torch.tensor([nw / w, nh / h, left, top], dtype=torch.float64)
        return image, target


def unletterbox(boxes: torch.Tensor, letterbox: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Boxes in letterboxed pixels → pixels of the original ``(H, W)`` image (clipped)."""
    sx, sy, left, top = (float(v) for v in letterbox)
    out = boxes.clone().double()
    out[:, 0::2] = (out[:, 0::2] - left) / sx
    out[:, 1::2] = (out[:, 1::2] - top) / sy
    h, w = image_size
    out[:, 0::2] = out[:, 0::2].clamp(0, w)
    out[:, 1::2] = out[:, 1::2].clamp(0, h)
    return out.float()


def _labels(inputs):
    target = inputs[1]
    return (target["labels"], target["difficult"]) if "difficult" in target else target["labels"]


def augmentation(name: str) -> list:
    """The training augmentations of a policy.

    * ``none``;
    * ``colour_scale`` (the scenes: no flip, since mirrored digits are other symbols): colour
      jitter and a random scale/shift of the whole picture;
    * ``photo`` (users' photos): photometric distortion, zoom-out, an IoU-constrained random
      crop (SSD's), horizontal flip.
    """
    sanitize = v2.SanitizeBoundingBoxes(min_size=2, labels_getter=_labels)
    if name == "none":
        return []
    if name == "colour_scale":
        return [v2.ColorJitter(0.3, 0.3, 0.3, 0.02),
                v2.RandomAffine(degrees=0, translate=(0.1, 0.1), scale=(0.75, 1.25), fill=FILL), sanitize]
    if name == "photo":
        return [v2.RandomPhotometricDistort(p=0.5), v2.RandomZoomOut(fill=FILL, side_range=(1.0, 2.0), p=0.3),
                v2.RandomIoUCrop(), v2.RandomHorizontalFlip(), sanitize]
    raise ValueError(f"detector.augment must be none, colour_scale or photo, got {name!r}")


def detector_transform(input_size: int, augment: str = "none") -> v2.Compose:
    """Augment (training only), letterbox to ``input_size``², scale to float [0, 1]."""
    return v2.Compose([_DropLandmarks(), *augmentation(augment), Letterbox(input_size),
                       v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True)])


class _DropLandmarks:
    """Detectors do not use landmarks, and geometric transforms would not move them."""

    def __call__(self, image, target):
        return image, {k: v for k, v in target.items() if k != "landmarks"}
