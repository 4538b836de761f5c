"""Multi-crop at test time: deterministic crops of each test image and a head that averages over them.

The course's tip (and GoogLeNet's and ResNet's test protocol): run the classifier on several
versions of each test image and average its outputs. As in ImageNet practice, a test image is
first resized to :func:`resize_for_crops` — its checkpoint's ``input_size`` times ``resize`` (1.143 =
256/224) — and the crops of ``input_size`` are then cut out of it, so a corner crop sees a
shifted view and the centre crop a slightly zoomed one. Every crop is deterministic; torchvision's
``FiveCrop``/``TenCrop`` give the reference positions, timm's test-time pool the averaging idea.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as nnf
from torchvision.transforms.v2 import functional as F

from .ensemble import ProbabilityModel, probabilities

# (top, left) as fractions of the free margin: 0 = top/left edge, 1 = bottom/right edge.
POSITIONS: dict[str, tuple[float, float]] = {
    "centre": (0.5, 0.5), "center": (0.5, 0.5),
    "top_left": (0.0, 0.0), "top_right": (0.0, 1.0),
    "bottom_left": (1.0, 0.0), "bottom_right": (1.0, 1.0),
    "top": (0.0, 0.5), "bottom": (1.0, 0.5), "left": (0.5, 0.0), "right": (0.5, 1.0),
}


@dataclass(frozen=True)
class Crop:
    """One deterministic crop.

    Args:
        top: vertical position of the window in the free margin, 0 (top edge) to 1 (bottom edge);
            0.5 is centred and rounds exactly as torchvision's ``center_crop``.
        left: horizontal position, 0 (left edge) to 1 (right edge).
        flip: mirror the image left-right *before* cropping, as torchvision's ``ten_crop`` does,
            so ``top``/``left`` refer to the mirrored image.
        scale: side of the window relative to the crop size, clamped to the image; the window is
            resized to the crop size. Above 1 the crop sees more context (like testing at a
            smaller image scale), below 1 it zooms in.
    """

    top: float = 0.5
    left: float = 0.5
    flip: bool = False
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not (0.0 <= self.top <= 1.0 and 0.0 <= self.left <= 1.0):
            raise ValueError(f"crop position must lie in [0, 1], got top={self.top}, left={self.left}")
        if self.scale <= 0:
            raise ValueError(f"crop scale must be positive, got {self.scale}")


_FIVE_NAMES = ("top_left", "top_right", "bottom_left", "bottom_right", "centre")
CENTRE: tuple[Crop, ...] = (Crop(),)
FLIP: tuple[Crop, ...] = (Crop(), Crop(flip=True))
FIVE: tuple[Crop, ...] = tuple(Crop(*POSITIONS[n]) for n in _FIVE_NAMES)
# torchvision order: the five crops, then the same five positions of the mirrored image.
TEN: tuple[Crop, ...] = FIVE + tuple(replace(c, flip=True) for c in FIVE)
PRESETS: dict[str, tuple[Crop, ...]] = {"centre": CENTRE, "center": CENTRE, "flip": FLIP, "five": FIVE,
                                        "ten": TEN}


def parse_crop(spec: str | Mapping[str, Any]) -> Crop:
    """A crop from a position name (``"top_left"``) or a mapping.

    The mapping takes either ``pos`` (a name of :data:`POSITIONS`) or ``top``/``left`` fractions,
    plus optional ``flip`` and ``scale``, e.g. ``{pos: centre, flip: true, scale: 1.143}``.

    Raises:
        ValueError: unknown position name or key.
    """
    if isinstance(spec, str):
        spec = {"pos": spec}
    spec = dict(spec)
    unknown = set(spec) - {"pos", "top", "left", "flip", "scale"}
    if unknown:
        raise ValueError(f"unknown crop keys {sorted(unknown)} in {spec}; use pos or top/left, flip, scale")
    if "pos" in spec:
        name = spec.pop("pos")
        if name not in POSITIONS:
            raise ValueError(f"unknown crop position {name!r}; known: {', '.join(POSITIONS)}")
        spec["top"], spec["left"] = POSITIONS[name]
    return Crop(**spec)


def parse_crop_set(spec: str | Sequence[str | Mapping[str, Any]]) -> tuple[Crop, ...]:
    """A crop set from a preset name (``centre``, ``flip``, ``five``, ``ten``) or a list of crops.

    Raises:
        ValueError: unknown preset, empty list, or a bad crop in the list.
    """
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise ValueError(f"unknown crop set {spec!r}; presets: {', '.join(PRESETS)}, or a list of crops")
        return PRESETS[spec]
    crops = tuple(parse_crop(c) for c in spec)
    if not crops:
        raise ValueError("a crop set needs at least one crop")
    return crops


def resize_for_crops(input_size: Sequence[int], resize: float) -> tuple[int, int]:
    """(H, W) to resize test images to before cropping ``input_size`` out of them."""
    if resize < 1.0:
        raise ValueError(f"resize must be >= 1 (crops are cut from the resized image), got {resize}")
    return tuple(int(round(s * resize)) for s in input_size[-2:])


def centre_crop(images: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The centre ``size`` window of ``[..., H, W]`` images."""
    return F.center_crop(images, list(size))


def five_crop(images: torch.Tensor, size: Sequence[int]) -> list[torch.Tensor]:
    """Top-left, top-right, bottom-left, bottom-right and centre windows (torchvision order)."""
    return list(F.five_crop(images, list(size)))


def ten_crop(images: torch.Tensor, size: Sequence[int]) -> list[torch.Tensor]:
    """:func:`five_crop` of the images, then :func:`five_crop` of their left-right mirror."""
    return list(F.ten_crop(images, list(size)))


def apply_crop(images: torch.Tensor, crop: Crop, size: Sequence[int]) -> torch.Tensor:
    """Cut ``crop`` out of ``[..., H, W]`` images, returning ``[..., h, w]`` with ``(h, w) = size``.

    Raises:
        ValueError: the images are smaller than the crop.
    """
    (H, W), (h, w) = images.shape[-2:], tuple(size)
    if h > H or w > W:
        raise ValueError(f"images of {H}x{W} are smaller than the {h}x{w} crop; resize them first (resize_for_crops)")
    wh, ww = min(H, int(round(h * crop.scale))), min(W, int(round(w * crop.scale)))
    if crop.flip:
        images = F.horizontal_flip(images)
    # Same rounding as torchvision's center_crop (int(round(margin / 2))), so positions agree exactly.
    top, left = int(round((H - wh) * crop.top)), int(round((W - ww) * crop.left))
    out = images[..., top:top + wh, left:left + ww]
    if (wh, ww) != (h, w):
        out = F.resize(out, [h, w], antialias=True)
    return out


def crops_batch(images: torch.Tensor, crops: Sequence[Crop], size: Sequence[int]) -> torch.Tensor:
    """All crops of a ``[B, C, H, W]`` batch as one ``[n_crops * B, C, h, w]`` batch, crop-major."""
    if len(crops) == 1:
        return apply_crop(images, crops[0], size)
    return torch.cat([apply_crop(images, c, size) for c in crops])


class MultiCropPredictor(ProbabilityModel):
    """Class probabilities averaged over deterministic crops: ``mean_c softmax(model(crop_c(x)))``.

    All crops go through the model as one batch (``n_crops`` times the batch size), which is
    where multi-crop's memory cost comes from. ``model`` may return logits (a classifier) or
    probabilities (an :class:`~cnnlab.evaluate.ensemble.Ensemble`).

    Args:
        model: the classifier, in eval mode.
        crops: the crop set.
        size: (h, w) crop size, the checkpoint's ``input_size``.
    """

    def __init__(self, model: nn.Module, crops: Sequence[Crop], size: Sequence[int]):
        super().__init__()
        if not crops:
            raise ValueError("MultiCropPredictor needs at least one crop")
        self.model = model
        self.crops = tuple(crops)
        self.size = tuple(size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        probs = probabilities(self.model, crops_batch(images, self.crops, self.size))
        return probs.view(len(self.crops), images.shape[0], -1).mean(0)


def multicrop_embed(embed_fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                    crops: Sequence[Crop], size: Sequence[int]) -> torch.Tensor:
    """L2-normalised mean of the L2-normalised embeddings of every crop (flip-averaging and beyond).

    Args:
        embed_fn: maps ``[N, C, h, w]`` images to ``[N, D]`` embeddings.
        images: ``[B, C, H, W]`` normalised images at least ``size`` large.
        crops: the crop set.
        size: (h, w) the encoder is fed.

    Returns:
        ``[B, D]`` unit-length embeddings.
    """
    emb = nnf.normalize(embed_fn(crops_batch(images, crops, size)), dim=1)
    return nnf.normalize(emb.view(len(crops), images.shape[0], -1).mean(0), dim=1)
