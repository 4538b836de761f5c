"""The embedded detection data set ``scenes``: objects pasted onto real backgrounds, from a seed.

Each scene is a crop of a background that installs with the stack (:data:`BACKGROUNDS`), with 2-5
objects pasted at a random position, size, aspect ratio and small rotation. The objects are
sprites (:func:`sprite`): ORL faces (an elliptical cut-out of the photo, with dlib's 5 landmarks
fitted on the photo as the alignment stage does), scikit-learn digits (upscaled strokes in a
random colour) and three shapes (circle, square, triangle).

Exactness: a sprite is placed by one 2×3 affine ``A`` (sprite pixel → scene pixel, pixel centres
at integer coordinates). An object covers scene pixel ``(x, y)`` iff the sprite's alpha is set at
``floor(A⁻¹(x, y) + 0.5)`` (:func:`paste_mask`). Its box is the tight box of all the pixels it
covers, occluded or not (``x2``/``y2`` exclusive); its mask pixels are those not covered by an
object pasted later; its landmarks are ``A`` applied to the sprite's landmarks. Every ``A`` is
stored in ``annotations.json`` (``scene.objects[i].affine``), so tests redraw all of it.

Splits: faces come from the ORL identity split of ``conf/data/orl_faces_ids.yaml`` (test scenes
only show people the face encoder never trained on), digits from a seeded 70/15/15 split of the
1,797 scikit-learn digits, backgrounds from disjoint halves (train | val, test) of each photo.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data.images import DataError
from .data import Sample, write_dataset

log = logging.getLogger(__name__)

CLASSES = ("face", "digit", "circle", "square", "triangle")
SHAPE_SIZE = 32
DIGIT_SIZE = 32

#: Backgrounds: scikit-image's textures and photos, scikit-learn's two sample photos.
BACKGROUNDS = {
    "brick": ("skimage", "brick"), "grass": ("skimage", "grass"), "gravel": ("skimage", "gravel"),
    "astronaut": ("skimage", "astronaut"), "coffee": ("skimage", "coffee"), "chelsea": ("skimage", "chelsea"),
    "rocket": ("skimage", "rocket"), "china": ("sklearn", "china.jpg"), "flower": ("sklearn", "flower.jpg"),
}


@dataclass(frozen=True)
class SceneConfig:
    """What the generator draws (``conf/data/scenes.yaml``)."""

    image_size: int = 128
    counts: tuple[tuple[str, int], ...] = (("train", 300), ("val", 60), ("test", 60))
    objects: tuple[int, int] = (2, 5)
    object_size: tuple[float, float] = (18.0, 56.0)   # longer side of the sprite after scaling, px
    aspect: tuple[float, float] = (0.75, 1.33)        # width/height stretch
    rotation: float = 15.0                             # degrees, ±
    max_iou: float = 0.35                              # between any two boxes of a scene
    max_hidden: float = 0.5                            # of an earlier object's pixels a new one may hide
    near: float = 0.3                                  # chance of placing an object beside another one


# ---------------------------------------------------------------------------------------------
# Sprites


@functools.lru_cache(maxsize=None)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images, d.target


@functools.lru_cache(maxsize=None)
def _orl(root: str) -> tuple[tuple[str, np.ndarray, np.ndarray], ...]:
    """Every ORL photo under ``root`` as ``(person, grey [112, 92], landmarks [5, 2])``, sorted."""
    from PIL import Image

    from ..face.detection.align import face_landmarks
    from ..face.detection.detectors import Face, NoFaceError, largest_face

    paths = sorted(Path(root).glob("s*/*.pgm"), key=lambda p: (int(p.parent.name[1:]), int(p.stem)))
    if not paths:
        raise DataError(f"{root}: no ORL photos (expected {root}/s<N>/<k>.pgm; set data.faces_root)")
    out = []
    for p in paths:
        grey = np.asarray(Image.open(p).convert("L"))
        try:
            face = largest_face(grey, "hog")
        except NoFaceError:  # as the alignment stage's no_face=whole_image: fit in the whole frame
            face = Face(0, 0, grey.shape[1], grey.shape[0], 0.0, "whole_image")
        out.append((p.parent.name, grey, face_landmarks(grey, face)))
    return tuple(out)


def _shape_alpha(kind: str, n: int = SHAPE_SIZE) -> np.ndarray:
    """The analytic shape at sprite pixel centres ``(u, v)``."""
    v, u = np.mgrid[0:n, 0:n].astype(np.float64)
    return shape_inside(kind, u, v, n)


def shape_inside(kind: str, u: np.ndarray, v: np.ndarray, n: int = SHAPE_SIZE) -> np.ndarray:
    """Whether sprite point ``(u, v)`` lies in the shape (sprite of side ``n``; used by the tests too)."""
    c = (n - 1) / 2
    if kind == "circle":
        return (u - c) ** 2 + (v - c) ** 2 <= (n / 2) ** 2
    if kind == "square":
        return (u >= 0) & (u <= n - 1) & (v >= 0) & (v <= n - 1)
    if kind == "triangle":  # apex top centre, base along the bottom row
        return (v <= n - 1) & (np.abs(u - c) <= (v + 0.5) * (n / 2) / n + 1e-9)
    raise ValueError(f"unknown shape {kind!r}")


def sprite(kind: str, index: int, faces_root: str, colour: Sequence[int] = (255, 255, 255)
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The sprite of an object: ``(rgb [h, w, 3] uint8, alpha [h, w] bool, landmarks [5, 2] | None)``.

    Args:
        kind: a class name of :data:`CLASSES`.
        index: the ORL photo (faces) or scikit-learn digit (digits); ignored for shapes.
        faces_root: the ORL folder.
        colour: the colour of digits and shapes.
    """
    if kind == "face":
        _, grey, marks = _orl(faces_root)[index]
        h, w = grey.shape
        v, u = np.mgrid[0:h, 0:w]
        alpha = ((u - (w - 1) / 2) / (w / 2)) ** 2 + ((v - (h - 1) / 2) / (h / 2)) ** 2 <= 1.0
        return np.repeat(grey[:, :, None], 3, axis=2), alpha, marks
    if kind == "digit":
        from PIL import Image

        img = _digits()[0][index]
        big = np.asarray(Image.fromarray((img * 255 / 16).astype(np.uint8)).resize((DIGIT_SIZE,) * 2, Image.BILINEAR))
        alpha = big >= 96
        shade = (0.55 + 0.45 * big[:, :, None] / 255.0)
        return (shade * np.asarray(colour, dtype=np.float64)).astype(np.uint8), alpha, None
    alpha = _shape_alpha(kind)
    return np.broadcast_to(np.asarray(colour, np.uint8), alpha.shape + (3,)).copy(), alpha, None


# ---------------------------------------------------------------------------------------------
# Geometry


def placement(size: tuple[int, int], centre: tuple[float, float], longer: float, aspect: float,
              angle_deg: float) -> np.ndarray:
    """The ``[2, 3]`` affine sprite pixel → scene pixel: scale to ``longer`` px, stretch, rotate, move."""
    h, w = size
    s = longer / max(h, w)
    sx, sy = s * math.sqrt(aspect), s / math.sqrt(aspect)
    t = math.radians(angle_deg)
    lin = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]]) @ np.diag([sx, sy])
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    return np.hstack([lin, (np.asarray(centre) - lin @ c)[:, None]])


def paste_mask(alpha: np.ndarray, affine: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The scene pixels an object covers: alpha at ``floor(A⁻¹(x, y) + 0.5)`` (nearest sprite pixel)."""
    inv = np.linalg.inv(np.vstack([affine, [0, 0, 1]]))[:2]
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    u = np.floor(inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2] + 0.5).astype(np.int64)
    v = np.floor(inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2] + 0.5).astype(np.int64)
    ok = (u >= 0) & (u < alpha.shape[1]) & (v >= 0) & (v < alpha.shape[0])
    out = np.zeros(shape, dtype=bool)
    out[ok] = alpha[v[ok], u[ok]]
    return out


def mask_box(mask: np.ndarray) -> list[float]:
    """Tight ``[x1, y1, x2, y2]`` of a boolean mask (``x2``/``y2`` exclusive)."""
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``[N, 2]`` points through a ``[2, 3]`` affine."""
    return np.asarray(points, np.float64) @ affine[:, :2].T + affine[:, 2]


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


# ---------------------------------------------------------------------------------------------
# Backgrounds


@functools.lru_cache(maxsize=None)
def background_image(name: str) -> np.ndarray:
    """A background photo or texture as ``[H, W, 3]`` uint8."""
    lib, key = BACKGROUNDS[name]
    if lib == "skimage":
        import skimage.data

        img = getattr(skimage.data, key)()
    else:
        from sklearn.datasets import load_sample_image

        img = load_sample_image(key)
    return np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img[:, :, :3]


def background(name: str, half: int, rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[int]]:
    """A random square crop of the left (``half=0``: train) or right (1: val, test) half, resized."""
    import cv2

    img = background_image(name)
    h, w = img.shape[:2]
    x_lo, x_hi = (0, w // 2) if half == 0 else (w // 2, w)
    side = int(rng.integers(min(h, x_hi - x_lo) // 2, min(h, x_hi - x_lo) + 1))
    x0 = int(rng.integers(x_lo, x_hi - side + 1))
    y0 = int(rng.integers(0, h - side + 1))
    crop = img[y0:y0 + side, x0:x0 + side]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA), [x0, y0, side]


# ---------------------------------------------------------------------------------------------
# Scenes


@dataclass(frozen=True)
class Pools:
    """What each split may draw from: ORL photo indices and digit indices."""

    faces: dict[str, list[int]]
    digits: dict[str, list[int]]


def pools(faces_root: str, face_split: dict[str, Any], seed: int) -> Pools:
    """Split the ORL people as ``orl_faces_ids`` does, and the digits 70/15/15 by ``seed``."""
    from ..data.splits import identity_split

    people = [p for p, _, _ in _orl(faces_root)]
    roles = identity_split(people, int(face_split["val_ids"]), int(face_split["test_ids"]), int(face_split["seed"]))
    faces = {r: [i for i, x in enumerate(roles) if x == r] for r in ("train", "val", "test")}
    n = len(_digits()[1])
    order = np.random.default_rng(seed).permutation(n)
    n_test = n_val = round(0.15 * n)
    digits = {"test": sorted(order[:n_test].tolist()), "val": sorted(order[n_test:n_test + n_val].tolist()),
              "train": sorted(order[n_test + n_val:].tolist())}
    return Pools(faces, digits)


def _colour(rng: np.random.Generator) -> list[int]:
    """A saturated colour (stands out on most backgrounds without being trivial)."""
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(float(rng.random()), float(rng.uniform(0.6, 1.0)), float(rng.uniform(0.7, 1.0)))
    return [int(r * 255), int(g * 255), int(b * 255)]


def _try_place(rng, cfg: SceneConfig, size: tuple[int, int], placed: list[dict]) -> np.ndarray:
    """A random placement of a sprite of ``size``, beside an earlier object with probability ``cfg.near``."""
    longer = float(math.exp(rng.uniform(*np.log(cfg.object_size))))
    aspect = float(math.exp(rng.uniform(*np.log(cfg.aspect))))
    angle = float(rng.uniform(-cfg.rotation, cfg.rotation))
    half = longer * 0.75  # a rotated, stretched sprite's half-extent stays below this
    lo, hi = half, cfg.image_size - 1 - half
    if placed and rng.random() < cfg.near:
        ref = placed[int(rng.integers(len(placed)))]["centre"]
        centre = np.clip(np.asarray(ref) + rng.uniform(-14, 14, 2), lo, hi)
    else:
        centre = rng.uniform(lo, hi, 2)
    return placement(size, tuple(centre), longer, aspect, angle)


def make_scene(rng: np.random.Generator, cfg: SceneConfig, split: str, pool: Pools, faces_root: str,
               backgrounds: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[dict], dict]:
    """One scene: ``(image [S, S, 3], mask [S, S], objects, params)`` (see the module docstring)."""
    import cv2

    n = cfg.image_size
    bg_name = backgrounds[int(rng.integers(len(backgrounds)))]
    image, crop = background(bg_name, 0 if split == "train" else 1, rng, n)
    image = image.copy()
    owner = np.full((n, n), -1, dtype=np.int64)          # which object shows at each pixel
    placed: list[dict] = []
    for _ in range(int(rng.integers(cfg.objects[0], cfg.objects[1] + 1))):
        kind = CLASSES[int(rng.integers(len(CLASSES)))]
        source = {"face": pool.faces, "digit": pool.digits}.get(kind)
        index = int(rng.choice(source[split])) if source else 0
        colour = _colour(rng)
        rgb, alpha, marks = sprite(kind, index, faces_root, colour)
        for _attempt in range(20):
            affine = _try_place(rng, cfg, alpha.shape, placed)
            full = paste_mask(alpha, affine, (n, n))
            if full.sum() < 16 or full[0].any() or full[-1].any() or full[:, 0].any() or full[:, -1].any():
                continue
            box = mask_box(full)
            if any(_iou(box, p["box"]) > cfg.max_iou for p in placed):
                continue
            if any((full & (owner == j)).sum() > cfg.max_hidden * p["area"] for j, p in enumerate(placed)):
                continue
            break
        else:
            continue  # no room left for it in this scene
        warped = cv2.warpAffine(rgb, affine, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        image[full] = warped[full]
        owner[full] = len(placed)
        placed.append({"kind": kind, "index": index, "colour": colour, "affine": affine, "box": box,
                       "area": int(full.sum()), "centre": affine[:, 2] + affine[:, :2] @ (np.array(alpha.shape[::-1]) - 1) / 2,
                       "landmarks": None if marks is None else apply_affine(affine, marks)})
    mask = np.zeros((n, n), dtype=np.uint8)
    for j, p in enumerate(placed):
        mask[owner == j] = 1 + CLASSES.index(p["kind"])
    objects = [{"class": p["kind"], "class_id": CLASSES.index(p["kind"]), "box": p["box"], "difficult": False,
                "landmarks": None if p["landmarks"] is None else p["landmarks"].tolist()} for p in placed]
    params = {"background": bg_name, "crop": crop,
              "objects": [{"kind": p["kind"], "index": p["index"], "colour": p["colour"],
                           "affine": np.round(p["affine"], 12).tolist()} for p in placed]}
    return image, mask, objects, params


def generate(out: str | Path, faces_root: str | Path, face_split: dict[str, Any], cfg: SceneConfig, seed: int,
             backgrounds: Sequence[str] | None = None, name: str = "scenes") -> dict:
    """Generate every split into ``out`` (atomically) and draw ``preview.png``. Returns dataset.json's content."""
    from .preview import draw_preview

    backgrounds = list(backgrounds or BACKGROUNDS)
    unknown = sorted(set(backgrounds) - set(BACKGROUNDS))
    if unknown:
        raise DataError(f"data.backgrounds: unknown {unknown} (choose from {sorted(BACKGROUNDS)})")
    faces_root = str(faces_root)
    pool = pools(faces_root, face_split, seed)
    splits: dict[str, list[Sample]] = {}
    for k, (split, count) in enumerate(cfg.counts):
        samples = []
        for i in range(int(count)):
            rng = np.random.default_rng([seed, k, i])
            image, mask, objects, params = make_scene(rng, cfg, split, pool, faces_root, backgrounds)
            samples.append(Sample(f"{i:05d}", image, objects, mask, extra={"scene": params}))
        splits[split] = samples
    people = {s: sorted({_orl(faces_root)[i][0] for i in idx}) for s, idx in pool.faces.items()}
    extra = {"image_size": [cfg.image_size, cfg.image_size], "channels": 3, "backgrounds": backgrounds,
             "face_people": people, "landmarks": "dlib 5-point (right eye outer, inner, left eye outer, inner, nose)",
             "generator": {k: v for k, v in cfg.__dict__.items() if k != "counts"}}
    return write_dataset(out, splits, CLASSES, name=name, source="scenes", seed=seed, extra=extra,
                         finish=lambda tmp: draw_preview(tmp, "train", tmp / "preview.png"))
