"""Drawing detected faces (boxes, scores, landmarks) into a tagged PNG that the gallery code refuses as a face image."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from .detectors import Face
from .images import as_array


DRAWING_TAG = "cnnlab face detect"
DRAWING_SUFFIX = ".faces.png"


def is_drawing(path: str | Path) -> bool:
    """Is this file an annotated copy that ``cnnlab face detect`` wrote (not a photo)?

    Such files carry :data:`DRAWING_TAG` in their metadata (PNG text ``Software``, JPEG comment);
    names ending in :data:`DRAWING_SUFFIX` count too (drawings of earlier versions had no tag).
    """
    path = Path(path)
    if path.name.endswith(DRAWING_SUFFIX):
        return True
    try:
        with Image.open(path) as img:
            tags = [img.info.get("Software"), img.info.get("comment")]
    except (OSError, ValueError):
        return False                        # unreadable: the reader names it later
    return any((t.decode(errors="ignore") if isinstance(t, bytes) else t) == DRAWING_TAG for t in tags if t)


def save_drawing(image: Image.Image, path: str | Path) -> None:
    """Save a drawing (format from the suffix) tagged with :data:`DRAWING_TAG`, see :func:`is_drawing`."""
    from PIL import PngImagePlugin

    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("Software", DRAWING_TAG)
        image.save(path, format="PNG", pnginfo=info)
    elif fmt == "JPEG":
        image.save(path, format="JPEG", quality=95, comment=DRAWING_TAG)
    else:
        image.save(path, format=fmt)


def draw_boxes(image: Any, faces: Sequence[Face], *, landmarks: Sequence[np.ndarray] | None = None,
               min_side: int = 320, color: tuple[int, int, int] = (0, 255, 0),
               landmark_color: tuple[int, int, int] = (255, 40, 40)) -> Image.Image:
    """A copy of the image with each face's box and score drawn on it.

    Args:
        image: As :func:`as_array`; greyscale images are drawn in RGB.
        faces: Boxes in the image's pixel coordinates.
        landmarks: Optional ``[5, 2]`` (x, y) points per face (:func:`cnnlab.face.detection.align.face_landmarks`),
            drawn as filled dots.
        min_side: Images whose shorter side is below this are first enlarged by the smallest
            integer factor that reaches it (nearest neighbour, so no pixel is invented), so that
            the labels stay readable on small images such as the 92×112 ORL faces.
        color: Box and label background colour.
        landmark_color: Colour of the landmark dots.

    Returns:
        An RGB PIL image; label ``"#<rank> <detector> <score>"`` above each box (inside it when
        the box touches the top).
    """
    from PIL import ImageDraw, ImageFont

    img, _ = as_array(image)
    canvas = Image.fromarray(img).convert("RGB")
    zoom = max(1, -(-min_side // min(canvas.size)))
    if zoom > 1:
        canvas = canvas.resize((canvas.width * zoom, canvas.height * zoom), Image.NEAREST)
    draw = ImageDraw.Draw(canvas)
    line = max(2, round(min(canvas.size) / 160))
    font_size = max(12, round(min(canvas.size) / 22))
    try:
        font = ImageFont.load_default(size=font_size)
    except TypeError:                       # Pillow < 10.1: a fixed bitmap font
        font = ImageFont.load_default()
    for rank, face in enumerate(faces, 1):
        x0, y0, x1, y1 = (v * zoom for v in face.box)
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=color, width=line)
        if landmarks is not None:
            r = max(2, round(line * 1.5))
            for x, y in np.asarray(landmarks[rank - 1], dtype=float):
                cx, cy = (x + 0.5) * zoom, (y + 0.5) * zoom      # the centre of the landmark's pixel
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=landmark_color, outline=(0, 0, 0))
        label = f"#{rank} {face.detector} {face.score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        tw, th = right - left + 2 * line, bottom - top + 2 * line
        lx = min(max(x0, 0), max(canvas.width - tw, 0))
        ly = y0 - th if y0 - th >= 0 else max(y0, 0)
        draw.rectangle((lx, ly, lx + tw, ly + th), fill=color)
        draw.text((lx + line - left, ly + line - top), label, fill=(0, 0, 0), font=font)
    return canvas
