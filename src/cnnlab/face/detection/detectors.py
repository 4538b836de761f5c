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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from .images import as_array, to_grey

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

Select = Literal["all", "largest"]


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
# Cached detectors


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
