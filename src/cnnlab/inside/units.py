"""The image patches that most activate each unit (Zeiler & Fergus 2013, as the course shows it).

A unit is a channel of a layer; its activation on an image is taken at its best spatial
position, and the patch shown is that position's receptive field in the input
(:mod:`cnnlab.inside.receptive`). The top ``k`` images per unit are distinct images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from .network import Network
from .receptive import Field, module, trace_fields


class _Stop(Exception):
    """Raised by the hook on the deepest requested layer: nothing beyond it needs computing."""


@dataclass
class LayerUnits:
    """The top patches of some units of one layer.

    Attributes:
        layer: the layer's name.
        field: its receptive field.
        units: channel indices shown.
        values: ``(len(units), k)`` best activations, descending.
        images: ``(len(units), k)`` indices into the data set.
        boxes: ``(len(units), k, 4)`` input windows ``(top, left, bottom, right)``, unclipped.
        patches: per unit, ``k`` uint8 ``(h, w, 3)`` patches of the field's full size (the part
            outside the image grey).
    """

    layer: str
    field: Field
    units: list[int]
    values: np.ndarray
    images: np.ndarray
    boxes: np.ndarray
    patches: list[list[np.ndarray]] = field(default_factory=list)


def activation_maxima(net: Network, layers: Sequence[str], images: torch.Tensor, batch_size: int = 64,
                      progress: bool = True) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each unit's best activation on each image, and where.

    Args:
        net: the network.
        layers: layer names.
        images: ``(N, C, H, W)`` in [0, 1] at the network's input size.
        batch_size: images per forward pass.
        progress: show a progress bar.

    Returns:
        ``{layer: (values (N, C), flat positions (N, C) into that layer's H × W)}``.
    """
    net.check_layers(layers)
    caught: dict[str, torch.Tensor] = {}
    order = {n: i for i, (n, _) in enumerate(net.model.named_modules())}
    last = max(layers, key=order.__getitem__)

    def hook(name):
        def fn(_m, _i, out):
            caught[name] = out[0] if isinstance(out, tuple) else out
            if name == last and all(n in caught for n in layers):
                raise _Stop
        return fn

    hooks = [module(net.model, n).register_forward_hook(hook(n)) for n in layers]
    values = {n: [] for n in layers}
    where = {n: [] for n in layers}
    try:
        with torch.no_grad():
            for start in tqdm(range(0, len(images), batch_size), desc="activations", unit="batch",
                              disable=not progress, leave=False):
                caught.clear()
                try:
                    net.model(net.normalize(images[start:start + batch_size]))
                except _Stop:
                    pass
                for n in layers:
                    v, i = caught[n].flatten(2).max(dim=2)
                    values[n].append(v)
                    where[n].append(i)
    finally:
        for h in hooks:
            h.remove()
    return {n: (torch.cat(values[n]), torch.cat(where[n])) for n in layers}


def top_patches(net: Network, layers: Sequence[str], images: torch.Tensor, units: int = 16, k: int = 9,
                batch_size: int = 64, progress: bool = True) -> list[LayerUnits]:
    """The ``k`` image patches that most activate each of the first ``units`` units of each layer.

    Args:
        net: the network.
        layers: layer names (``named_modules`` paths).
        images: ``(N, C, H, W)`` in [0, 1] at the network's input size; ``N ≥ k``.
        units: how many channels per layer (the first ones, or all if fewer).
        k: patches per unit (the course shows 9).
        batch_size: images per forward pass.
        progress: show a progress bar.

    Raises:
        KeyError: a layer the network does not have (the message lists its convolutions).
        ValueError: fewer than ``k`` images.
    """
    if len(images) < k:
        raise ValueError(f"need at least {k} images for the top {k} per unit, got {len(images)}")
    maxima = activation_maxima(net, layers, images, batch_size, progress)
    fields = trace_fields(net.model, layers, net.normalize(images[:1]))
    out = []
    for name in layers:
        fld, shape = fields[name]
        vals, pos = maxima[name]
        chosen = list(range(min(units, vals.shape[1])))
        best_v, best_i = vals[:, chosen].topk(k, dim=0)  # (k, U): distinct images per unit
        width = shape[3]
        boxes = np.zeros((len(chosen), k, 4), dtype=int)
        patches = []
        for u, c in enumerate(chosen):
            row = []
            for r in range(k):
                img = int(best_i[r, u])
                p = int(pos[img, c])
                boxes[u, r] = fld.box(p // width, p % width)
                row.append(crop(images[img], fld, p // width, p % width))
            patches.append(row)
        out.append(LayerUnits(name, fld, chosen, best_v.T.numpy(), best_i.T.numpy(), boxes, patches))
    return out


def crop(image: torch.Tensor, fld: Field, i: int, j: int, fill: int = 128) -> np.ndarray:
    """The receptive field of unit ``(i, j)`` cut from ``image`` (``(C, H, W)`` in [0, 1]).

    Returns a uint8 array of the field's full size, capped at the image's: where the window
    reaches past the image (into the padding) it is ``fill`` grey, so every patch of a layer is
    equally big and the image sits where the unit sees it. A field larger than the image (deep
    layers) shows the whole part of the image it reads.
    """
    from .network import to_uint8

    H, W = image.shape[1:]
    (h, w), (top, left) = fld.size, fld.box(i, j)[:2]
    t, l, b, r = fld.box(i, j, clip=(H, W))
    if h > H:
        h, top = H, 0
    if w > W:
        w, left = W, 0
    t, l, b, r = max(t, top), max(l, left), min(b, top + h), min(r, left + w)
    patch = np.full((h, w, 3), fill, dtype=np.uint8)
    if b > t and r > l:
        patch[t - top:b - top, l - left:r - left] = to_uint8(image[:, t:b, l:r])
    return patch
