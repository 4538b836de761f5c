"""Batch augmentation on tensors already on the device: flip, padded random crop, colour.

The CPU policies in ``conf/augment`` transform one image at a time in DataLoader workers. When
the whole data set sits on the GPU (``trainer=gpu``), a batch is augmented there instead, every
sample with its own random parameters and no Python loop over samples. As in torchvision v2,
parameters are sampled first (:meth:`BatchAugment.sample`, from an explicit ``torch.Generator``)
and then applied (:meth:`BatchAugment.apply`), so a seed fixes the result and tests can check
the transform against the parameters it drew.

Flip and crop are one gather on the padded batch, done before the conversion to float (so on
uint8 when the data are uint8). The colour step follows torchvision's ``adjust_brightness`` and
``adjust_contrast``: brightness scales by ``b``; contrast blends with the image's mean grey level.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# torchvision's rgb_to_grayscale weights (ITU-R 601-2 luma), so contrast matches adjust_contrast
_LUMA = (0.2989, 0.587, 0.114)


@dataclass(frozen=True)
class BatchParams:
    """Per-sample random parameters of one batch (None: that distortion is off).

    Attributes:
        mirror: bool [N], True where the sample is flipped left-right.
        offsets: long [N, 2], (top, left) of each H×W window in the padded image, in [0, 2p].
        brightness: float [N], brightness factors.
        contrast: float [N], contrast factors.
    """

    mirror: torch.Tensor | None
    offsets: torch.Tensor | None
    brightness: torch.Tensor | None
    contrast: torch.Tensor | None


@dataclass(frozen=True)
class BatchAugment:
    """Random flip, padded random crop and brightness/contrast jitter for a batch [N, C, H, W].

    Args:
        flip: mirror left-right with probability 1/2.
        crop_padding: pad ``p`` zero pixels on each side, then crop an H×W window at a uniform
            random offset in [0, 2p] × [0, 2p] (torchvision ``RandomCrop(size, padding=p)``).
        brightness: factor drawn uniformly from [1 - b, 1 + b].
        contrast: factor drawn uniformly from [1 - c, 1 + c].
    """

    flip: bool = False
    crop_padding: int = 0
    brightness: float = 0.0
    contrast: float = 0.0

    def __post_init__(self):
        if self.crop_padding < 0 or not 0 <= self.brightness <= 1 or not 0 <= self.contrast <= 1:
            raise ValueError(f"BatchAugment needs crop_padding >= 0 and brightness, contrast in [0, 1]; got {self}")

    def sample(self, n: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> BatchParams:
        """Draw the parameters of ``n`` samples (on ``generator``'s device when one is given)."""
        device = generator.device if generator is not None else device

        def uniform(spread: float) -> torch.Tensor:
            return 1 + (2 * torch.rand(n, generator=generator, device=device) - 1) * spread

        mirror = torch.rand(n, generator=generator, device=device) < 0.5 if self.flip else None
        p = self.crop_padding
        offsets = torch.randint(0, 2 * p + 1, (n, 2), generator=generator, device=device) if p else None
        return BatchParams(mirror, offsets, uniform(self.brightness) if self.brightness else None,
                           uniform(self.contrast) if self.contrast else None)

    def apply(self, x: torch.Tensor, params: BatchParams) -> torch.Tensor:
        """Augment ``x`` (uint8 in [0, 255] or float in [0, 1]); returns float32 in [0, 1].

        The result of a flip or crop has channels_last strides (the gather runs on NHWC).
        """
        x = flip_crop(x, self.crop_padding, params.mirror, params.offsets)
        x = to_unit_float(x)
        if params.brightness is not None:
            x = (x * params.brightness.view(-1, 1, 1, 1)).clamp_(0, 1)
        if params.contrast is not None:
            x = blend_mean_grey(x, params.contrast)
        return x

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.apply(x, self.sample(x.shape[0], generator, x.device))


def to_unit_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] → float32 [0, 1] (as ``v2.ToDtype(float32, scale=True)``); float passes through."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x.float()


def flip_crop(x: torch.Tensor, padding: int, mirror: torch.Tensor | None,
              offsets: torch.Tensor | None) -> torch.Tensor:
    """Crop each sample's H×W window from the zero-padded batch, mirrored where ``mirror``.

    Args:
        x: [N, C, H, W], any dtype.
        padding: the pad ``p`` the offsets refer to.
        mirror: bool [N] or None (no flip).
        offsets: long [N, 2] (top, left) in [0, 2p], or None (no crop).
    """
    if mirror is None and offsets is None:
        return x
    n, _, h, w = x.shape
    if offsets is None:
        offsets, padding = torch.zeros(n, 2, dtype=torch.long, device=x.device), 0
    src = F.pad(x, (padding,) * 4) if padding else x
    rows = offsets[:, :1] + torch.arange(h, device=x.device)          # [N, H]
    cols = offsets[:, 1:] + torch.arange(w, device=x.device)          # [N, W]
    if mirror is not None:
        cols = torch.where(mirror[:, None], cols.flip(1), cols)      # read the window right to left
    batch = torch.arange(n, device=x.device)[:, None, None]
    # Advanced indexing on NHWC gathers whole pixels (all channels) at once: [N, H, W, C].
    out = src.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2)


def blend_mean_grey(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision's ``adjust_contrast`` per sample: ``factor·x + (1 - factor)·mean grey``, clamped."""
    if x.shape[1] == 3:
        grey = _LUMA[0] * x[:, 0] + _LUMA[1] * x[:, 1] + _LUMA[2] * x[:, 2]
        mean = grey.mean(dim=(-2, -1)).view(-1, 1, 1, 1)
    else:
        mean = x.mean(dim=(-3, -2, -1), keepdim=True)
    f = factor.view(-1, 1, 1, 1)
    return (f * x + (1 - f) * mean).clamp_(0, 1)
