"""Face detection: one interface over dlib's HOG detector and OpenCV's Haar cascade.

``detect_faces(image)`` returns every face as a :class:`Face` (pixel box, the detector's own score),
largest first; :func:`largest_face` is the policy for images with several faces (the biggest box
wins: in a portrait or an ID photo the subject is the closest, hence largest, face). An image
without a face raises :class:`NoFaceError` ("no face found in <file>").

Detectors (created once per process and cached):

- ``"hog"`` (default): ``dlib.get_frontal_face_detector()``, a HOG + linear SVM sliding window of
  about 80×80 pixels; ``upsample`` doubles the image that many times first, so the smallest face
  it finds is about ``80 / 2**upsample`` pixels. Default ``upsample=1`` (dlib's own usual choice,
  faces from about 40 px). The score is the SVM margin, > ``threshold`` (0 by default, dlib's).
- ``"haar"``: OpenCV's Viola-Jones cascade ``haarcascade_frontalface_default.xml`` through
  ``detectMultiScale3(..., outputRejectLevels=True)``; the score is the level weight (the sum of
  the last stage's weak classifiers), on another scale than HOG's. OpenCV 5 moved the cascade
  classifier to opencv_contrib and its wheels no longer ship the XML files: with such an OpenCV
  the Haar detector raises :class:`DetectorUnavailable` saying so (``opencv-python-headless<5``
  has both).

Border: faces that fill the frame (the ORL images are 92×112 crops around the head) touch the
image edge, where no detection window fits. The image is therefore padded by ``border`` × its
longer side on every side, replicating the edge pixels, before detection; boxes are shifted
back, so they may extend a little past the image. On the 200 ORL images this lifts Haar from
187/200 to 200/200 and HOG (upsample 1) from 199/200 to 200/200 (measured with
:func:`detection_rate`, table below).

Measured on the 200 embedded ORL images (``data/raw/orl_faces/s*/*.pgm``, 20 people × 10,
greyscale 92×112) with :func:`detection_rate`, on the 2-core CPU of the development machine
(under load, so times are upper bounds); Haar measured with opencv-python-headless 4.13:

======================================  =========  ============
setting                                 found      time / image
======================================  =========  ============
hog, upsample 0, border 0               200/200    0.8 ms
hog, upsample 0, border 0.15            200/200    1.6 ms
hog, upsample 1, border 0               199/200    3.7 ms
hog, upsample 1, border 0.15            200/200    6 ms      (default)
hog, upsample 2, border 0.15            200/200    23 ms
haar (1.1, 3 neighbours), border 0      187/200    6.5 ms
haar (1.1, 3 neighbours), border 0.15   200/200    13 ms
======================================  =========  ============

``upsample=1`` is kept as the default although ORL needs none: it also finds the 40–80 px faces
of ordinary photographs, at about 4× the cost of ``upsample=0``. No fallback chain is needed.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
from PIL import Image

DETECTORS = ("hog", "haar")
#: Per-detector defaults (the values ``None`` arguments take). ``scale_factor`` and ``min_neighbors``
#: are OpenCV's ``detectMultiScale`` parameters (its documented defaults).
DEFAULTS: dict[str, dict[str, float]] = {
    "hog": {"upsample": 1, "threshold": 0.0},
    "haar": {"upsample": 0, "scale_factor": 1.1, "min_neighbors": 3},
}
#: Padding added on each side before detection, as a fraction of the image's longer side.
BORDER = 0.15
HAAR_CASCADE = "haarcascade_frontalface_default.xml"
LANDMARKS_5 = "shape_predictor_5_face_landmarks.dat"

Select = Literal["all", "largest"]
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


class NoFaceError(ValueError):
    """The detector found no face; the message says "no face found" and names the file when known."""


class DetectorUnavailable(RuntimeError):
    """The requested detector cannot run with the installed libraries (the message says what to install)."""


@dataclass(frozen=True)
class Face:
    """A detected face.

    Attributes:
        x0: Left edge, pixels from the image's left (inclusive; may be < 0 for a face cut by the edge).
        y0: Top edge (inclusive).
        x1: Right edge (exclusive: ``width = x1 - x0``); may exceed the image width.
        y1: Bottom edge (exclusive).
        score: The detector's confidence: dlib's SVM margin for ``"hog"``, OpenCV's level weight for
            ``"haar"``. Comparable only between faces of the same detector.
        detector: ``"hog"`` or ``"haar"``.
    """

    x0: int
    y0: int
    x1: int
    y1: int
    score: float
    detector: str

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def area(self) -> int:
        return self.width * self.height

    @property
    def box(self) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)``."""
        return (self.x0, self.y0, self.x1, self.y1)

    def to_dlib(self):
        """The box as a ``dlib.rectangle`` (whose right and bottom are inclusive)."""
        import dlib

        return dlib.rectangle(self.x0, self.y0, self.x1 - 1, self.y1 - 1)

    def __str__(self) -> str:
        return (f"({self.x0}, {self.y0}, {self.x1}, {self.y1}) {self.width}x{self.height} "
                f"score {self.score:.2f} [{self.detector}]")


# ---------------------------------------------------------------------------------------------
# Inputs


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

        from ..data.images import DataError

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


# ---------------------------------------------------------------------------------------------
# Model files and cached detectors


def face_model_file(name: str) -> Path:
    """Path of a model file shipped by the ``face_recognition_models`` package.

    The package is located without importing it (its ``__init__`` needs ``pkg_resources``, absent
    from recent setuptools).

    Args:
        name: A file of its ``models/`` folder, e.g. ``"shape_predictor_5_face_landmarks.dat"``.

    Raises:
        FileNotFoundError: the package is not installed, or has no such file (the message says
            how to install it).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"{name}: the face_recognition_models package is not installed "
                                f"(pip install 'cnnlab[faces]' or pip install face_recognition_models)")
    path = Path(spec.origin).parent / "models" / name
    if not path.is_file():
        raise FileNotFoundError(f"{name} not found in the face_recognition_models package ({path.parent})")
    return path


@functools.lru_cache(maxsize=None)
def hog_detector():
    """dlib's frontal-face HOG detector, created once."""
    import dlib

    return dlib.get_frontal_face_detector()


def haar_cascade_file() -> Path:
    """``haarcascade_frontalface_default.xml`` as shipped by the installed OpenCV wheel.

    Raises:
        DetectorUnavailable: this OpenCV has no cascade classifier or no cascade files (OpenCV 5).
    """
    import cv2

    if not hasattr(cv2, "CascadeClassifier"):
        raise DetectorUnavailable(
            f"the Haar detector needs cv2.CascadeClassifier, which OpenCV {cv2.__version__} does not have "
            f"(OpenCV 5 moved it to opencv_contrib): install opencv-python-headless<5, or use detector 'hog'")
    path = Path(getattr(getattr(cv2, "data", None), "haarcascades", "") or ".") / HAAR_CASCADE
    if not path.is_file():
        raise DetectorUnavailable(
            f"the Haar detector needs {HAAR_CASCADE}, which OpenCV {cv2.__version__} does not ship "
            f"(looked in {path.parent}): install opencv-python-headless<5, or use detector 'hog'")
    return path


@functools.lru_cache(maxsize=None)
def haar_detector():
    """OpenCV's frontal-face Haar cascade, loaded once.

    Raises:
        DetectorUnavailable: see :func:`haar_cascade_file`, or the file does not load.
    """
    import cv2

    path = haar_cascade_file()
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise DetectorUnavailable(f"OpenCV could not load the Haar cascade {path}")
    return cascade


def available_detectors() -> list[str]:
    """The detectors that can run with the installed libraries."""
    found = ["hog"]
    try:
        haar_cascade_file()
        found.append("haar")
    except (DetectorUnavailable, ImportError):
        pass
    return found


# ---------------------------------------------------------------------------------------------
# Detection


def _detect_hog(img: np.ndarray, upsample: int, threshold: float) -> list[tuple[int, int, int, int, float]]:
    dets, scores, _ = hog_detector().run(img, upsample, threshold)
    return [(r.left(), r.top(), r.right() + 1, r.bottom() + 1, float(s)) for r, s in zip(dets, scores)]


def _detect_haar(img: np.ndarray, upsample: int, min_size: int, scale_factor: float,
                 min_neighbors: int) -> list[tuple[int, int, int, int, float]]:
    import cv2

    grey = to_grey(img)
    zoom = 2 ** upsample
    if zoom > 1:
        grey = cv2.resize(grey, (grey.shape[1] * zoom, grey.shape[0] * zoom), interpolation=cv2.INTER_LINEAR)
    side = int(min_size * zoom)
    boxes, _, weights = haar_detector().detectMultiScale3(
        grey, scaleFactor=scale_factor, minNeighbors=int(min_neighbors), minSize=(side, side),
        outputRejectLevels=True)
    out = []
    for (x, y, w, h), s in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(weights).reshape(-1)):
        x0, y0 = int(round(x / zoom)), int(round(y / zoom))
        out.append((x0, y0, int(round((x + w) / zoom)), int(round((y + h) / zoom)), float(s)))
    return out


def detect_faces(image: Any, detector: str = "hog", *, upsample: int | None = None, min_size: int = 0,
                 threshold: float | None = None, border: float = BORDER, select: Select = "all",
                 scale_factor: float | None = None, min_neighbors: int | None = None,
                 name: str | None = None) -> list[Face]:
    """Find the faces in an image.

    Args:
        image: A path, PIL image or uint8 array (see :func:`as_array`); greyscale or RGB.
        detector: ``"hog"`` (dlib) or ``"haar"`` (OpenCV).
        upsample: How many times the image is doubled before detection (None: the detector's
            default, 1 for HOG, 0 for Haar). Each doubling halves the smallest findable face
            (HOG: about 80 px at 0, 40 px at 1, 20 px at 2) and costs about 4× the time.
        min_size: Faces whose box is narrower than this (pixels of the input image) are dropped;
            for Haar it is also the smallest window searched.
        threshold: HOG only: keep detections with an SVM margin above this (None: 0, dlib's
            default; negative finds more, less reliable faces).
        border: Replicated padding around the image, as a fraction of its longer side (see the
            module docstring); 0 disables it.
        select: ``"all"`` (every face, largest first) or ``"largest"`` (a list of just the
            largest face).
        scale_factor: Haar only: pyramid step (None: 1.1).
        min_neighbors: Haar only: overlapping raw detections needed to keep a face (None: 3).
        name: What to call the image in the "no face found" message (default: its file name
            when ``image`` is a path).

    Returns:
        The faces, sorted by box area, largest first (ties: higher score first). Never empty.

    Raises:
        NoFaceError: no face found.
        DetectorUnavailable: ``"haar"`` with an OpenCV that lacks it.
        ValueError: an unknown detector or ``select``, a negative ``upsample``, or a bad image.
        FileNotFoundError: the path does not exist.
    """
    if detector not in DETECTORS:
        raise ValueError(f"unknown face detector {detector!r}; choose one of {', '.join(DETECTORS)}")
    if select not in ("all", "largest"):
        raise ValueError(f"select must be 'all' or 'largest', got {select!r}")
    defaults = DEFAULTS[detector]
    upsample = int(defaults["upsample"] if upsample is None else upsample)
    if upsample < 0:
        raise ValueError(f"upsample must be >= 0, got {upsample}")
    img, path = as_array(image)
    name = name or path
    pad = int(round(border * max(img.shape[:2]))) if border > 0 else 0
    if pad:
        import cv2

        img = np.ascontiguousarray(cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE))
    if detector == "hog":
        raw = _detect_hog(img, upsample, defaults["threshold"] if threshold is None else float(threshold))
    else:
        raw = _detect_haar(img, upsample, min_size,
                           defaults["scale_factor"] if scale_factor is None else float(scale_factor),
                           defaults["min_neighbors"] if min_neighbors is None else int(min_neighbors))
    faces = [Face(x0 - pad, y0 - pad, x1 - pad, y1 - pad, s, detector) for x0, y0, x1, y1, s in raw
             if x1 - x0 >= min_size]
    if not faces:
        where = f"in {name}" if name else "in the image"
        raise NoFaceError(f"no face found {where} ({detector} detector, upsample {upsample}"
                          f"{f', min size {min_size}px' if min_size else ''})")
    faces.sort(key=lambda f: (-f.area, -f.score))
    return faces[:1] if select == "largest" else faces


def largest_face(image: Any, detector: str = "hog", **kwargs: Any) -> Face:
    """The largest face of the image (the policy for several faces); ``kwargs`` as :func:`detect_faces`.

    Raises:
        NoFaceError: no face found.
    """
    return detect_faces(image, detector, select="largest", **kwargs)[0]


def detection_rate(paths: Sequence[str | Path], detector: str = "hog", **kwargs: Any) -> dict[str, Any]:
    """How many of ``paths`` have at least one face; ``kwargs`` as :func:`detect_faces`.

    Returns:
        ``{"found", "total", "rate", "missed" (paths), "multiple" (paths with more than one face),
        "seconds" (detection time, files read first), "faces_per_s"}``.
    """
    import time

    images = [(str(p), as_array(p)[0]) for p in paths]
    found, missed, multiple = 0, [], []
    start = time.perf_counter()
    for path, img in images:
        try:
            faces = detect_faces(img, detector, **kwargs)
        except NoFaceError:
            missed.append(path)
            continue
        found += 1
        if len(faces) > 1:
            multiple.append(path)
    seconds = time.perf_counter() - start
    return {"found": found, "total": len(images), "rate": found / max(len(images), 1), "missed": missed,
            "multiple": multiple, "seconds": seconds, "faces_per_s": len(images) / max(seconds, 1e-9)}


# ---------------------------------------------------------------------------------------------
# Drawing


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
        landmarks: Optional ``[5, 2]`` (x, y) points per face (:func:`cnnlab.face.align.face_landmarks`),
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
