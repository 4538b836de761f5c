"""Reading any image (path, PIL image, uint8 array) into the uint8 array the face code works on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

_GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def as_array(image: Any) -> tuple[np.ndarray, str | None]:
    """Read any supported image into a C-contiguous uint8 array, greyscale kept greyscale.

    Args:
        image: A file path (``str`` or ``Path``), a PIL image, or a uint8 numpy array of shape
            ``H×W`` (greyscale), ``H×W×1``, ``H×W×3`` (RGB) or ``H×W×4`` (RGBA; alpha dropped).

    Returns:
        ``(array, name)``: ``H×W`` for greyscale input (PIL modes ``1``, ``L``, ``I``, ``I;16``, ``F``)
        and ``H×W×3`` RGB otherwise; ``name`` is the file name for a path, else None.

    Raises:
        FileNotFoundError: the path does not exist.
        cnnlab.data.images.DataError: the file cannot be decoded (a ``ValueError``).
        ValueError: an array of another dtype or shape, or an empty image.
    """
    name = None
    if isinstance(image, (str, Path)):
        from PIL import UnidentifiedImageError

        from ...data.images import DataError

        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"image not found: {path}")
        name = str(path)
        try:
            with Image.open(path) as img:
                img.load()
                image = img.convert("L" if img.mode in _GREY_MODES else "RGB")
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise DataError(f"{path}: cannot read image ({err})") from err
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("L" if image.mode in _GREY_MODES else "RGB"))
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected an image path, a PIL image or a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image arrays must be uint8 (0..255), got {image.dtype}; e.g. "
                         f"(x * 255).round().astype(np.uint8) for floats in [0, 1]")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"expected an H×W greyscale or H×W×3 RGB image, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"empty image (shape {image.shape})")
    return np.ascontiguousarray(image), name


def to_grey(image: np.ndarray) -> np.ndarray:
    """``H×W`` uint8: the image itself if greyscale, else its luma (ITU-R 601, as OpenCV and PIL)."""
    if image.ndim == 2:
        return image
    import cv2

    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
