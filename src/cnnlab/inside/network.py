"""Any cnnlab checkpoint as a network to look inside: the existing loaders, layer names, inputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn


@dataclass
class Network:
    """A trained network and how images must be fed to it.

    Attributes:
        model: the module in eval mode; layer names are its ``named_modules`` paths
            (``features.3`` in a zoo backbone, ``backbone.features.3`` in a face embedder,
            ``net.level2.0`` in dlib's face ResNet).
        in_chans: 1 (grey) or 3 (RGB).
        input_size: ``(H, W)`` the network was trained on.
        mean, std: per-channel normalisation of [0, 1] pixels.
        kind: ``"classifier"`` or ``"face encoder"``.
    """

    model: nn.Module
    in_chans: int
    input_size: tuple[int, int]
    mean: list[float]
    std: list[float]
    kind: str

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] pixels ``(N, C, H, W)`` → the network's input (grey networks take the channel mean of RGB)."""
        if self.in_chans == 1 and x.shape[1] == 3:
            x = x.mean(dim=1, keepdim=True)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device)[:, None, None]
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device)[:, None, None]
        return (x - mean) / std

    def conv_layers(self) -> list[str]:
        """Names of the network's 2-D convolutions, input to output."""
        return [n for n, m in self.model.named_modules() if isinstance(m, nn.Conv2d)]

    def check_layers(self, layers: Sequence[str]) -> None:
        """Raise ``KeyError`` naming the first unknown layer and listing the convolutions."""
        names = dict(self.model.named_modules())
        for layer in layers:
            if not layer or layer not in names:
                raise KeyError(f"layer {layer!r} is not in this {self.kind}; its convolutions: "
                               f"{', '.join(self.conv_layers())} (any named_modules path works)")


def load_network(path: str | Path) -> Network:
    """Load a cnnlab classifier or face-encoder checkpoint through their own loaders.

    Raises:
        FileNotFoundError: no such file.
        ValueError: neither kind of cnnlab checkpoint.
    """
    from ..face.models.embedder import load_encoder
    from ..tasks.classifier import load_checkpoint

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    errors = []
    for kind, loader in (("classifier", load_checkpoint), ("face encoder", load_encoder)):
        try:
            model, hp = loader(path)
        except (ValueError, KeyError) as err:  # KeyError: a face checkpoint has no "classes"
            errors.append(str(err))
            continue
        norm = hp.get("normalization") or {"mean": [0.0] * hp["in_chans"], "std": [1.0] * hp["in_chans"]}
        return Network(model.eval(), int(hp["in_chans"]), tuple(hp["input_size"]), list(norm["mean"]),
                       list(norm["std"]), kind)
    raise ValueError(f"{path}: not a cnnlab classifier or face-encoder checkpoint ({'; '.join(errors)})")


def default_layers(net: Network, n: int) -> list[str]:
    """``n`` convolutions spread from the first to the last (all of them if there are fewer)."""
    convs = net.conv_layers()
    if len(convs) <= n:
        return convs
    idx = np.unique(np.round(np.linspace(0, len(convs) - 1, n)).astype(int))
    return [convs[i] for i in idx]


def image_files(root: str | Path) -> list[Path]:
    """Every image under ``root`` (recursively, sorted; hidden files skipped).

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        ValueError: it holds no image.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder not found: {root}")
    exts = {".png", ".jpg", ".jpeg", ".pgm", ".ppm", ".bmp", ".tif", ".tiff", ".gif", ".webp"}
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in exts and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise ValueError(f"{root}: no images ({', '.join(sorted(exts))}) under it")
    return files


def load_images(files: Sequence[Path], net: Network) -> torch.Tensor:
    """Decode and resize images to the network's input: ``(N, 3 or 1, H, W)`` float in [0, 1].

    Raises:
        ValueError: a file cannot be decoded (named).
    """
    from ..data.images import DataError, load_image

    mode = "L" if net.in_chans == 1 else "RGB"
    out = []
    for f in files:
        try:
            img = load_image(f, mode)
        except DataError as err:
            raise ValueError(str(err)) from None
        img = img.resize((net.input_size[1], net.input_size[0]), resample=3) if img.size != net.input_size[::-1] else img
        arr = np.asarray(img, dtype=np.float32) / 255.0
        out.append(torch.from_numpy(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)))
    return torch.stack(out)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """``(C, H, W)`` [0, 1] → ``(H, W, 3)`` uint8 (grey repeated)."""
    arr = (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    return np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr
