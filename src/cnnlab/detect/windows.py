"""Sliding windows, naive and convolutional (the course's week 3, "Convolutional implementation
of sliding windows").

The course's window classifier on a 14×14×3 window::

    CONV 5×5, 16 → 10×10×16 → MAX POOL 2×2 → 5×5×16 → FC 400 → FC 400 → softmax (K)

and its convolutional twin: the first FC layer becomes 400 filters of 5×5×16, each later FC
layer a 1×1 convolution, with the very same weights. Run on a larger image once, the twin gives
one K-vector per window at a stride of 2 (the pooling's): 16×16×3 → 2×2×K, 28×28×3 → 8×8×K.

:func:`naive_windows` crops every window and classifies each crop; :func:`conv_windows` runs the
twin once per scale. Both return the same logits for the same windows (to float rounding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

#: The course's window classifier as a table: (layer, out channels / units, kernel).
COURSE_TABLE = (("conv", 16, 5), ("maxpool", None, 2), ("fc", 400, None), ("fc", 400, None), ("softmax", None, None))


class WindowClassifier(nn.Module):
    """The course's window classifier (FC layers), for ``window × window`` crops.

    Args:
        num_classes: outputs K (the course: 4 = pedestrian, car, motorcycle, background).
        window: the window side (14 in the course).
        channels: filters of the first convolution (16).
        hidden: units of the two FC layers (400).
        in_chans: input channels.
    """

    def __init__(self, num_classes: int = 4, window: int = 14, channels: int = 16, hidden: int = 400,
                 in_chans: int = 3, kernel: int = 5):
        super().__init__()
        if (window - kernel + 1) % 2:
            raise ValueError(f"window {window}: the {kernel}×{kernel} convolution's output must be even for 2×2 pooling")
        self.window, self.kernel = window, kernel
        self.pooled = (window - kernel + 1) // 2
        self.conv = nn.Conv2d(in_chans, channels, kernel)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(channels * self.pooled ** 2, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.conv(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, K]`` of ``[N, C, window, window]`` crops."""
        x = torch.flatten(self.features(x), 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class ConvWindowClassifier(nn.Module):
    """The FC layers of a :class:`WindowClassifier` as convolutions (made by :func:`to_convolutional`)."""

    def __init__(self, source: WindowClassifier):
        super().__init__()
        self.window, self.stride = source.window, 2
        self.conv, self.pool = source.conv, source.pool
        c = source.conv.out_channels
        self.fc1 = nn.Conv2d(c, source.fc1.out_features, source.pooled)
        self.fc2 = nn.Conv2d(source.fc2.in_features, source.fc2.out_features, 1)
        self.fc3 = nn.Conv2d(source.fc3.in_features, source.fc3.out_features, 1)
        self.to(source.fc1.weight.dtype)
        with torch.no_grad():  # flatten order (c, h, w) is the filter's (in, kh, kw)
            self.fc1.weight.copy_(source.fc1.weight.view(-1, c, source.pooled, source.pooled))
            self.fc2.weight.copy_(source.fc2.weight[:, :, None, None])
            self.fc3.weight.copy_(source.fc3.weight[:, :, None, None])
            for conv, fc in ((self.fc1, source.fc1), (self.fc2, source.fc2), (self.fc3, source.fc3)):
                conv.bias.copy_(fc.bias)

    def forward(self, x: torch.Tensor, step: int = 1) -> torch.Tensor:
        """Logits ``[N, K, H', W']``: window ``(i, j)`` starts at pixel ``(2·step·i, 2·step·j)`` of ``x``.

        Args:
            step: keep every ``step``-th window: the first FC-as-convolution strides by ``step`` over
                the pooled map, so windows between them are never computed (the shared first
                convolution still runs once over the whole image).
        """
        x = self.pool(F.relu(self.conv(x)))
        x = F.conv2d(x, self.fc1.weight, self.fc1.bias, stride=step)
        return self.fc3(F.relu(self.fc2(F.relu(x))))


def to_convolutional(model: WindowClassifier) -> ConvWindowClassifier:
    """The convolutional twin of ``model``, sharing its first convolution and copying the FC weights."""
    return ConvWindowClassifier(model).eval()


@dataclass
class Windows:
    """Every window of one image: logits and where each window lies in the original image.

    Attributes:
        logits: ``[N, K]``.
        boxes: ``[N, 4]`` ``xyxy`` in original-image pixels.
        counts: windows per scale.
    """

    logits: torch.Tensor
    boxes: torch.Tensor
    counts: list[int]


def _rescaled(image: torch.Tensor, window: int, size: float) -> tuple[torch.Tensor, float]:
    """The image resized so that a ``size``-pixel window becomes ``window`` pixels; and that factor."""
    f = window / size
    h, w = image.shape[-2:]
    out = F.interpolate(image[None], size=(max(window, round(h * f)), max(window, round(w * f))),
                        mode="bilinear", align_corners=False, antialias=f < 1)[0]
    return out, out.shape[-1] / w


def _grid_boxes(ny: int, nx: int, step: int, window: int, f: float) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(ny) * step, torch.arange(nx) * step, indexing="ij")
    x0, y0 = xs.reshape(-1).float() / f, ys.reshape(-1).float() / f
    return torch.stack([x0, y0, x0 + window / f, y0 + window / f], 1)


@torch.no_grad()
def naive_windows(model: WindowClassifier, image: torch.Tensor, sizes: Sequence[float], stride: int = 2,
                  batch: int = 1024) -> Windows:
    """Crop every window (side ``size`` px, every ``stride`` px of the rescaled image) and classify each.

    Args:
        image: normalised ``[C, H, W]``.
        sizes: window sides in original pixels (one scale each).
        stride: step in rescaled pixels (a multiple of 2 matches :func:`conv_windows`).
    """
    w = model.window
    logits, boxes, counts = [], [], []
    for size in sizes:
        img, f = _rescaled(image, w, size)
        crops = img.unfold(1, w, stride).unfold(2, w, stride)      # [C, ny, nx, w, w]
        ny, nx = crops.shape[1:3]
        crops = crops.permute(1, 2, 0, 3, 4).reshape(-1, img.shape[0], w, w)
        logits.append(torch.cat([model(crops[i:i + batch].contiguous()) for i in range(0, len(crops), batch)]))
        boxes.append(_grid_boxes(ny, nx, stride, w, f))
        counts.append(ny * nx)
    return Windows(torch.cat(logits), torch.cat(boxes), counts)


@torch.no_grad()
def conv_windows(model: ConvWindowClassifier, image: torch.Tensor, sizes: Sequence[float], stride: int = 2) -> Windows:
    """Run the convolutional twin once per scale, at every ``stride / 2``-th position of its output grid."""
    if stride % 2:
        raise ValueError(f"stride {stride}: the convolutional implementation steps by 2 (the pooling's)")
    k = stride // 2
    w = model.window
    logits, boxes, counts = [], [], []
    for size in sizes:
        img, f = _rescaled(image, w, size)
        out = model(img[None], step=k)[0]                           # [K, ny, nx]
        ny, nx = out.shape[1:]
        logits.append(out.permute(1, 2, 0).reshape(-1, out.shape[0]))
        boxes.append(_grid_boxes(ny, nx, stride, w, f))
        counts.append(ny * nx)
    return Windows(torch.cat(logits), torch.cat(boxes), counts)


def detections(win: Windows, background: int, threshold: float, iou: float) -> dict[str, torch.Tensor]:
    """Windows whose best object class scores above ``threshold`` → boxes → per-class NMS (torchvision).

    Returns:
        ``{"boxes" [M, 4], "scores" [M], "labels" [M]}`` with labels as object class ids
        (the background output removed), sorted by score.
    """
    from torchvision.ops import batched_nms

    prob = win.logits.softmax(1)
    obj = torch.cat([prob[:, :background], prob[:, background + 1:]], 1)
    scores, labels = obj.max(1)
    keep = scores > threshold
    boxes, scores, labels = win.boxes[keep], scores[keep], labels[keep]
    keep = batched_nms(boxes, scores, labels, iou)
    return {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}
