"""The distortions torchvision v2 lacks, written to v2's contract.

Each transform samples its random parameters once per call in ``make_params`` and applies them to
every image in ``transform`` (torchvision ≥ 0.21 names; 0.19–0.20 called them ``_get_params`` /
``_transform``), so paired inputs (siamese pairs, an image and its mask) get the same distortion.
Images are ``[..., C, H, W]`` tensors: uint8 in [0, 255] or float in [0, 1]. Other inputs
(boxes, masks, labels) pass through untouched.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F


def is_image(inpt: Any) -> bool:
    """Plain tensors and ``tv_tensors.Image`` / ``Video``; not boxes, masks or keypoints."""
    if isinstance(inpt, (tv_tensors.Image, tv_tensors.Video)):
        return True
    return isinstance(inpt, torch.Tensor) and not isinstance(inpt, tv_tensors.TVTensor)


def channels_of(flat_inputs: list[Any]) -> int:
    """The channel count shared by all images of one call.

    Raises:
        ValueError: the images disagree on their channel count.
    """
    counts = {int(x.shape[-3]) for x in flat_inputs if is_image(x)}
    if len(counts) != 1:
        raise ValueError(f"all images of one call must have the same channel count, got {sorted(counts)}")
    return counts.pop()


def add_offset(inpt: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """Add a per-channel ``offset`` (in [0, 1] intensity units) to an image, clamped to its range.

    uint8 images are shifted by ``255 * offset`` and rounded; float images are taken to be in [0, 1].
    """
    shift = offset.to(torch.float32).view(-1, 1, 1)
    if inpt.dtype == torch.uint8:
        out = (inpt.to(torch.float32) + 255.0 * shift).round_().clamp_(0, 255).to(torch.uint8)
    elif inpt.is_floating_point():
        out = (inpt + shift.to(inpt.dtype)).clamp(0.0, 1.0)
    else:
        raise TypeError(f"images must be uint8 or float, got {inpt.dtype}")
    return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out


class ChannelShift(v2.Transform):
    """The course's colour shifting: add an independent random offset to each of R, G and B.

    Offsets are drawn uniformly from ``[-max_shift, max_shift]`` in 0–255 units per channel (e.g.
    +20, −20, +20), once per call. A grey image gets a single offset, i.e. a brightness shift.

    Args:
        max_shift: largest offset per channel, in 0–255 intensity units.
    """

    _transformed_types = (is_image,)

    def __init__(self, max_shift: float = 20.0):
        super().__init__()
        if max_shift < 0:
            raise ValueError(f"max_shift must be >= 0, got {max_shift}")
        self.max_shift = float(max_shift)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        c = channels_of(flat_inputs)
        offset = (torch.rand(c) * 2 - 1) * self.max_shift
        return {"offset": offset / 255.0}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return add_offset(inpt, params["offset"])


class RandomResizedCropKeepSize(v2.RandomResizedCrop):
    """Random cropping that keeps the image size: crop a random area, then scale it back up.

    ``v2.RandomResizedCrop`` needs a fixed output size, but a policy is shared by data sets of
    different image sizes (the model's input size is set later by the eval transform), so here the
    output size is each input's own size.

    Args:
        scale: bounds of the crop's area as a fraction of the image's.
        ratio: bounds of the crop's aspect ratio (width / height).
        interpolation: as in ``v2.RandomResizedCrop``.
    """

    def __init__(self, scale: Sequence[float] = (0.6, 1.0), ratio: Sequence[float] = (3 / 4, 4 / 3),
                 interpolation: str | v2.InterpolationMode = "bilinear"):
        super().__init__(size=1, scale=tuple(scale), ratio=tuple(ratio), interpolation=interpolation)
        self.size = None  # the input's own size, found per call in make_params

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {**super().make_params(flat_inputs), "size": list(v2.query_size(flat_inputs))}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(F.resized_crop, inpt, **params, interpolation=self.interpolation,
                                 antialias=self.antialias)
