"""5-point face alignment: landmarks → least-squares similarity → a dlib-compatible face chip.

Landmarks come from dlib's 5-point shape predictor ``shape_predictor_5_face_landmarks.dat``
(CC0, shipped by ``face_recognition_models``; the 68-point model is deliberately not used: its
training data forbids commercial use). Its points, in image terms (the subject's left eye is on
the image's right):

====  ===========================================
 0    outer corner of the eye on the image's right
 1    inner corner of the eye on the image's right
 2    outer corner of the eye on the image's left
 3    inner corner of the eye on the image's left
 4    base of the nose (between the nostrils)
====  ===========================================

Canonical positions (:func:`canonical_landmarks`) are dlib's own: ``get_face_chip_details`` places
a 5-point face at ``(padding + MEAN_FACE_5) / (1 + 2·padding) · size``, where :data:`MEAN_FACE_5`
is dlib's mean face in the unit square (the constants of dlib/image_transforms/interpolation.h,
confirmed by mapping real landmarks into the chips ``dlib.get_face_chip`` makes; see the tests).
With the defaults (150 px, padding 0.25) the eyes' outer corners sit at (111.0, 46.3) and
(37.1, 46.4), their inner corners at (89.6, 47.9) and (58.4, 47.9), and the nose at (74.0, 87.8);
at 112 px everything scales by 112/150. Crops made here are the chips dlib's face ResNet expects
(``dlib.get_face_chip(img, shape, size=150, padding=0.25)``): on the 200 ORL images the two differ
by 0.44 grey levels on average and by at most 1 (rounding) at every pixel (at most 4 with
OpenCV 4.13, whose bilinear weights are coarser fixed-point numbers); when the face is
shrunk over 2× (dlib's pyramid path) by 0.5–0.65 on average, with a few pixels along the image
edge differing more because dlib builds its pyramid on a sub-window.

The transform (:func:`face_transform`) is estimated as dlib does: the least-squares similarity
(rotation, uniform scale, translation; Umeyama's closed form, reflections excluded) from the
canonical points to the detected ones. dlib then extracts the chip through a rectangle whose
corners map to pixel centres 0 and size−1, which rescales the chip by ``(size·s − 1)/(s·(size − 1))``
about its centre (``s`` = image pixels per chip pixel; 1.003 for an ORL face at 150 px); that
is reproduced here so that crops agree with dlib's pixel for pixel up to interpolation rounding
(landmarks land within a fraction of a pixel of the canonical positions either way). When the
chip is much smaller than the face (s > 1), the image is first halved with dlib's own pyramid,
as dlib does, so that bilinear sampling does not alias. The warp is ``cv2.warpAffine`` (bilinear,
black outside the image).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .detectors import Face, largest_face
from .images import as_array
from .model_files import LANDMARKS_5, face_model_file

#: dlib's mean 5-point face, ``(x, y)`` in the unit square, in the predictor's point order
#: (dlib/image_transforms/interpolation.h, ``get_face_chip_details``).
MEAN_FACE_5 = np.array([
    [0.8595674595992, 0.2134981538014],
    [0.6460604764104, 0.2289674387677],
    [0.1205750620789, 0.2137274526848],
    [0.3340850613712, 0.2290642403242],
    [0.4901123135679, 0.6277975316475],
])
DEFAULT_SIZE = 150
DEFAULT_PADDING = 0.25


@dataclass(frozen=True)
class AlignedFace:
    """An aligned face crop.

    Attributes:
        crop: ``size×size`` uint8, ``H×W`` for a greyscale input and ``H×W×3`` RGB otherwise.
        landmarks: ``[5, 2]`` float ``(x, y)``: the detected landmarks mapped into the crop (they lie
            near :func:`canonical_landmarks`, off by how much the face differs from dlib's mean).
        transform: ``[2, 3]`` float64 affine map from input-image pixels to crop pixels
            (``crop_xy = A @ [x, y, 1]``), a similarity: ``A[:, :2] = k·R`` with R a rotation.
        image_landmarks: ``[5, 2]`` the landmarks in the input image.
        face: The detection the landmarks were fitted in.
        size: The crop side.
        padding: dlib's padding: the crop spans the mean face's unit square plus this fraction
            of it on each side.
    """

    crop: np.ndarray
    landmarks: np.ndarray
    transform: np.ndarray
    image_landmarks: np.ndarray
    face: Face
    size: int
    padding: float

    @property
    def scale(self) -> float:
        """Crop pixels per image pixel."""
        return float(math.hypot(self.transform[0, 0], self.transform[1, 0]))

    @property
    def angle(self) -> float:
        """Rotation applied to the image, in degrees (counter-clockwise in x-right, y-down pixels)."""
        return float(math.degrees(math.atan2(self.transform[1, 0], self.transform[0, 0])))


def canonical_landmarks(size: int = DEFAULT_SIZE, padding: float = DEFAULT_PADDING) -> np.ndarray:
    """Where an average face's 5 landmarks land in a ``size×size`` crop, ``[5, 2]`` ``(x, y)`` pixels.

    Args:
        size: Crop side in pixels.
        padding: Margin around the mean face's unit square, as a fraction of it, on each side
            (dlib's convention: 0.25 for the face ResNet, 0 crops tightly to the eyes and nose).
    """
    if size < 2 or padding < 0:
        raise ValueError(f"need size >= 2 and padding >= 0, got size {size}, padding {padding}")
    return (padding + MEAN_FACE_5) / (1 + 2 * padding) * size


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity ``[2, 3]`` mapping ``src`` points onto ``dst`` (Umeyama, 1991).

    Minimises ``Σ‖s·R·src_i + t − dst_i‖²`` over a rotation R (no reflection), a scale s > 0 and a
    translation t, in closed form; the same estimate as dlib's ``find_similarity_transform`` (which
    Python cannot call). Not ``cv2.estimateAffinePartial2D``: that one is robust (RANSAC or LMedS,
    fitting a subset of the points), not least squares, and its crops differ from dlib's by 5–7
    grey levels on average on ORL instead of 0.44.

    Args:
        src: ``[N, 2]`` points, N ≥ 2, not all equal.
        dst: ``[N, 2]`` corresponding points.
    """
    src, dst = np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two [N, 2] point arrays with N >= 2, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var = (s ** 2).sum() / len(src)
    if var == 0:
        raise ValueError("degenerate source points: all equal")
    u, sv, vt = np.linalg.svd(d.T @ s / len(src))
    flip = np.diag([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    rot = u @ flip @ vt
    scale = float((sv * np.diag(flip)).sum() / var)
    return np.hstack([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]])


def face_transform(landmarks: np.ndarray, size: int = DEFAULT_SIZE, padding: float = DEFAULT_PADDING) -> np.ndarray:
    """The ``[2, 3]`` image→crop similarity that dlib's ``get_face_chip`` applies for these landmarks.

    Args:
        landmarks: ``[5, 2]`` ``(x, y)`` of the 5-point predictor, in image pixels.
        size: Crop side.
        padding: See :func:`canonical_landmarks`.
    """
    chip_to_image = similarity_transform(canonical_landmarks(size, padding), landmarks)
    s = math.hypot(chip_to_image[0, 0], chip_to_image[1, 0])        # image pixels per chip pixel
    rot = chip_to_image[:, :2] / s
    centre = chip_to_image @ np.array([size / 2, size / 2, 1.0])
    # dlib's chip rectangle spans size·s − 1 image pixels between the centres of chip pixels 0 and size−1.
    k = max(size * s - 1, 1e-6) / (size - 1)
    lin = rot.T / k
    return np.hstack([lin, ((size - 1) / 2 - lin @ centre)[:, None]])


@functools.lru_cache(maxsize=None)
def landmark_predictor():
    """dlib's 5-point shape predictor, loaded once."""
    import dlib

    return dlib.shape_predictor(str(face_model_file(LANDMARKS_5)))


def face_landmarks(image: Any, face: Face) -> np.ndarray:
    """The 5 landmarks of ``face``, ``[5, 2]`` float ``(x, y)`` image pixels (dlib rounds to integers).

    Args:
        image: As :func:`cnnlab.face.detection.images.as_array`.
        face: The detection (any detector; the predictor was trained on dlib's HOG boxes).
    """
    img, _ = as_array(image)
    shape = landmark_predictor()(img, face.to_dlib())
    return np.array([(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)], dtype=np.float64)


def warp_face(image: np.ndarray, transform: np.ndarray, size: int) -> np.ndarray:
    """Apply an image→crop similarity: a ``size×size`` crop, bilinear, black outside the image.

    When the crop shrinks the face more than 2× (over two image pixels per crop pixel) the image
    is first halved with ``dlib.pyramid_down(2)`` until it no longer does, as dlib's
    ``extract_image_chips`` does, so that bilinear sampling does not alias.

    Args:
        image: ``H×W`` or ``H×W×3`` uint8.
        transform: ``[2, 3]`` image→crop affine (any affine; the pyramid step assumes a uniform scale).
        size: Crop side.
    """
    import cv2

    img = np.ascontiguousarray(image)
    crop_from_img = np.vstack([np.asarray(transform, dtype=np.float64), [0.0, 0.0, 1.0]])
    per_crop_px = 1.0 / math.hypot(crop_from_img[0, 0], crop_from_img[1, 0])
    if per_crop_px > 2.0:
        import dlib

        pyr = dlib.pyramid_down(2)
        corners = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
        down = np.array([[q.x, q.y] for q in (pyr.point_down(dlib.dpoint(*c)) for c in corners)])
        level_from_img = np.vstack([np.linalg.solve(np.c_[corners, np.ones(3)], down).T, [0.0, 0.0, 1.0]])
        img_from_level = np.linalg.inv(level_from_img)
        while per_crop_px > 2.0 and min(img.shape[:2]) >= 8:
            img = np.ascontiguousarray(pyr(img))
            crop_from_img = crop_from_img @ img_from_level
            per_crop_px /= 2
    crop = cv2.warpAffine(img, crop_from_img[:2], (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    # dlib leaves a crop pixel black unless all four of its bilinear neighbours are in the image;
    # OpenCV blends the edge pixels with the black border instead. Do as dlib does.
    inv = cv2.invertAffineTransform(crop_from_img[:2])
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    h, w = img.shape[:2]
    crop[~((sx >= 0) & (sy >= 0) & (sx < w - 1) & (sy < h - 1))] = 0
    return crop


def align_face(image: Any, face: Face | None = None, size: int = DEFAULT_SIZE, padding: float = DEFAULT_PADDING,
               *, detector: str = "hog", **detect_kwargs: Any) -> AlignedFace:
    """Align one face: 5 landmarks, the similarity to :func:`canonical_landmarks`, the warp.

    Args:
        image: A path, PIL image or uint8 array (see :func:`cnnlab.face.detection.images.as_array`); the
            crop keeps its mode (greyscale → ``H×W``, else RGB ``H×W×3``; stack a greyscale crop to
            three channels for dlib's face ResNet).
        face: The face to align; None detects the largest one with ``detector`` and ``detect_kwargs``
            (see :func:`cnnlab.face.detection.detectors.detect_faces`).
        size: Crop side in pixels (150 for dlib's face ResNet).
        padding: dlib's padding (see :func:`canonical_landmarks`); 0.25 for dlib's face ResNet.

    Raises:
        NoFaceError: ``face`` is None and no face is found.
    """
    img, name = as_array(image)
    if face is None:
        face = largest_face(img, detector, name=name, **detect_kwargs)
    points = face_landmarks(img, face)
    transform = face_transform(points, size, padding)
    crop = warp_face(img, transform, size)
    in_crop = points @ transform[:, :2].T + transform[:, 2]
    return AlignedFace(crop=crop, landmarks=in_crop, transform=transform, image_landmarks=points, face=face,
                       size=size, padding=padding)


def align_image(image: Any, detector: str = "hog", size: int = DEFAULT_SIZE, padding: float = DEFAULT_PADDING,
                **detect_kwargs: Any) -> AlignedFace:
    """Detect the largest face of an image and align it (:func:`align_face` with ``face=None``).

    Raises:
        NoFaceError: no face found ("no face found in <file>").
    """
    return align_face(image, None, size, padding, detector=detector, **detect_kwargs)
