"""How face images become encoder inputs: the alignment recipe every gallery records.

A gallery's encodings are only comparable with probes prepared the same way. So an encodings file
records its *recipe*: ``None`` (images taken as given, e.g. already-cropped faces) or the alignment
settings ``{"detector", "upsample", "size", "padding"}`` (detect the largest face, fit the 5 CC0
landmarks, warp to the canonical crop: :mod:`cnnlab.face.detection.align`). ``cnnlab face verify`` and
``identify`` prepare their probes with the gallery's recipe.

Two policies for an image without a detectable face:

- ``"whole_image"``: fit the landmarks inside the whole frame (right for data sets of already
  framed faces such as ORL); the caller is told which images had no face;
- ``"error"``: raise :class:`~cnnlab.face.detection.detectors.NoFaceError` ("no face found in <file>"), the
  policy for probes (``identify`` then answers "not recognised").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

RECIPE_KEYS = ("detector", "upsample", "size", "padding")
DEFAULT_RECIPE = {"detector": "hog", "upsample": 1, "size": 150, "padding": 0.25}
NO_FACE = ("whole_image", "error")


def recipe(align: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The alignment recipe of a ``face.align`` config node (or an ``alignment.json``); None stays None.

    Raises:
        KeyError: a recipe key is missing (the message names it).
    """
    if align is None:
        return None
    missing = [k for k in RECIPE_KEYS if k not in align]
    if missing:
        raise KeyError(f"face.align: missing {', '.join(missing)}")
    out = {k: align[k] for k in RECIPE_KEYS}
    return {**out, "upsample": int(out["upsample"]), "size": int(out["size"]), "padding": float(out["padding"])}


def folder_recipe(root: str | Path) -> dict[str, Any] | None:
    """The recipe of a split folder the ``align_faces`` stage wrote (its parent holds
    ``alignment.json``), else None: such folders are already aligned and are encoded as they are."""
    import json

    report = Path(root).resolve().parent / "alignment.json"
    return recipe(json.loads(report.read_text())) if report.is_file() else None


def detect_or_frame(img: np.ndarray, rec: Mapping[str, Any], no_face: str = "error", name: str | None = None):
    """``(face, detected)``: the largest face of ``img``, or (``no_face="whole_image"``) the whole frame.

    Raises:
        NoFaceError: no face and ``no_face="error"``.
        ValueError: an unknown ``no_face`` policy.
    """
    from .detectors import Face, NoFaceError, largest_face

    if no_face not in NO_FACE:
        raise ValueError(f"face.align.no_face must be one of {NO_FACE}, got {no_face!r}")
    try:
        return largest_face(img, rec["detector"], upsample=rec["upsample"], name=name), True
    except NoFaceError:
        if no_face == "error":
            raise
        h, w = img.shape[:2]
        return Face(0, 0, w, h, float("nan"), "whole_image"), False


def aligned_rgb(img: np.ndarray, face: Any, rec: Mapping[str, Any]) -> np.ndarray:
    """The aligned ``size×size×3`` uint8 crop of ``face`` (greyscale replicated to three channels)."""
    from .align import align_face

    crop = align_face(img, face, rec["size"], rec["padding"]).crop
    return np.repeat(crop[..., None], 3, axis=-1) if crop.ndim == 2 else crop


def prepare_images(paths: list[str | Path], rec: Mapping[str, Any] | None, no_face: str = "error",
                   progress: bool = False) -> tuple[list[Any], list[str]]:
    """Images ready for :func:`cnnlab.face.gallery.encodings.embed_images` under a recipe.

    Args:
        paths: image files.
        rec: the recipe; None returns ``paths`` unchanged (decoded later, as given).
        no_face: the policy for an image without a face (module docstring).
        progress: show a progress bar (on stderr) over the images.

    Returns:
        ``(images, no_face_paths)``: aligned RGB crops (or the paths when ``rec`` is None), and the
        paths in which no face was found (framed whole under ``"whole_image"``).

    Raises:
        DataError: an image cannot be read (the message names it).
        FileNotFoundError: an image does not exist.
        NoFaceError: no face and ``no_face="error"`` (the message names the file).
    """
    from tqdm.auto import tqdm

    from .images import as_array

    if rec is None:
        return list(paths), []
    images, missed = [], []
    for path in tqdm(paths, desc="detect + align", unit="face", disable=not progress or len(paths) < 2,
                     leave=False):
        img, _ = as_array(path)                 # DataError "<path>: cannot read image", FileNotFoundError
        face, found = detect_or_frame(img, rec, no_face, name=str(path))
        if not found:
            missed.append(str(path))
        images.append(aligned_rgb(img, face, rec))
    return images, missed
