"""Content and style images: those that install with the stack, or a user's own file.

Built in (no download; credits as the packages give them, see README "Data credit"):

- scikit-image ``skimage.data``: ``astronaut`` (Eileen Collins, NASA, no known copyright
  restrictions), ``chelsea`` (CC0, Stéfan van der Walt), ``coffee`` (CC0, Rachel Michetti, courtesy
  of Pikolo Espresso Bar), ``rocket`` (SpaceX, public domain), ``immunohistochemistry`` (Center for
  Microscopy And Molecular Imaging, no known copyright restrictions), ``hubble_deep_field`` (NASA,
  public domain), and the grey textures ``brick`` and ``gravel`` (CC0Textures, CC0) and ``grass``
  (linolafett on DeviantArt, CC0);
- scikit-learn ``load_sample_image``: ``china`` and ``flower`` (Flickr photographs, CC BY 2.0, as
  scikit-learn's ``datasets/images/README.txt`` attributes them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()
    return load


def _sklearn(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    return load


BUILTIN: dict[str, Callable[[], np.ndarray]] = {
    **{n: _skimage(n) for n in ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry",
                                "hubble_deep_field", "brick", "grass", "gravel")},
    "china": _sklearn("china"), "flower": _sklearn("flower"),
}


def image_name(spec: str | Path) -> str:
    """A short name for outputs: the built-in's name or the file's stem."""
    return str(spec) if str(spec) in BUILTIN else Path(spec).stem


def read_image(spec: str | Path) -> np.ndarray:
    """A built-in's or a file's pixels as ``(H, W, 3)`` uint8 RGB.

    Raises:
        FileNotFoundError: neither a built-in name nor an existing file.
        ValueError: the file is not an image (named in the message).
    """
    if str(spec) in BUILTIN:
        arr = BUILTIN[str(spec)]()
    else:
        from PIL import Image, UnidentifiedImageError

        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"image not found: {path} (built-in images: {', '.join(BUILTIN)})")
        try:
            with Image.open(path) as img:
                arr = np.asarray(img.convert("RGB"))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise ValueError(f"{path}: not an image ({err})") from None
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return np.ascontiguousarray(arr[..., :3])


def to_tensor(arr: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Resize ``(H, W, 3)`` uint8 to ``size = (h, w)``: a ``(3, h, w)`` float tensor in [0, 1]."""
    from PIL import Image

    img = Image.fromarray(arr).resize((size[1], size[0]), Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def content_size(arr: np.ndarray, size: int) -> tuple[int, int]:
    """``(h, w)`` with the longer side ``size`` and the aspect ratio kept."""
    h, w = arr.shape[:2]
    s = size / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def cover_crop(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The central crop of ``arr`` with the aspect ratio of ``size`` (the style image fills the content's frame)."""
    h, w = arr.shape[:2]
    target = size[0] / size[1]
    if h / w > target:
        nh = max(1, round(w * target))
        top = (h - nh) // 2
        return arr[top:top + nh]
    nw = max(1, round(h / target))
    left = (w - nw) // 2
    return arr[:, left:left + nw]


def load_pair(content: str | Path, style: str | Path, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Content resized to longer side ``size``; style cropped to its aspect and resized to its size."""
    c = read_image(content)
    hw = content_size(c, size)
    s = read_image(style)
    return to_tensor(c, hw), to_tensor(cover_crop(s, hw), hw)
