"""Align a whole prepared face data set: the ``align_faces`` stage's work.

Input: a prepared folder (``data/prepared/<name>``: ``manifest.csv``, ``dataset.json`` and the
split folders). Output: the same layout under ``data/aligned/<name>`` with every image replaced by
its aligned RGB crop (detect the largest face, fit the 5 CC0 landmarks, warp by the similarity to
dlib's canonical face; :mod:`cnnlab.face.detection.align`), the same manifest (so the same people stay in the
same split), ``dataset.json`` with the crops' statistics, and ``alignment.json``: how many faces
were detected, which images had none, and the CPU time per face of detection and of alignment.

Crops are RGB (a greyscale face is replicated to three channels) so that every encoder, dlib's
face ResNet included, reads the same files.

A data-set image in which the detector finds no face is handled by ``no_face``: ``"whole_image"``
fits the landmarks inside the whole frame (right for ORL-like, already framed faces; the image is
listed in ``alignment.json``) and ``"error"`` stops with the file's name. New images given to
``cnnlab face`` are different: there, no face means "no face found".
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ...data.images import DataError
from ...data.prepared_split import read_prepared
from ...io import write_json
from .detectors import NoFaceError
from .images import as_array
from .preprocess import NO_FACE, aligned_rgb, detect_or_frame, recipe



def align_prepared(source: str | Path, out: str | Path, detector: str = "hog", upsample: int = 1,
                   size: int = 150, padding: float = 0.25, no_face: str = "whole_image") -> dict[str, Any]:
    """Write the aligned copy of a prepared folder (atomically: a temporary sibling, then a rename).

    Args:
        source: the prepared folder.
        out: the aligned folder to create (replaced if it exists).
        detector: ``hog`` or ``haar`` (:func:`cnnlab.face.detection.detectors.detect_faces`).
        upsample: detector up-sampling steps.
        size: crop side in pixels.
        padding: dlib's padding around the canonical face.
        no_face: ``whole_image`` or ``error`` (see the module docstring).

    Returns:
        The content of ``alignment.json``.

    Raises:
        DataError: ``source`` is not a prepared folder, an image cannot be read, or (with
            ``no_face="error"``) an image has no detectable face; each message names the file.
        ValueError: an unknown ``no_face`` policy.
    """
    if no_face not in NO_FACE:
        raise ValueError(f"face.align.no_face must be one of {NO_FACE}, got {no_face!r}")
    rec = recipe({"detector": detector, "upsample": upsample, "size": size, "padding": padding})
    source, out = Path(source), Path(out)
    meta, rows = read_prepared(source)
    work = out.parent / f".{out.name}.partial"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    missed: list[str] = []
    t_detect = t_align = 0.0
    sums, sq, npix = np.zeros(3), np.zeros(3), 0
    try:
        for row in tqdm(rows, desc=f"align {source.name}", unit="face", mininterval=1.0):
            path = source / row["path"]
            try:
                img, _ = as_array(path)
            except (OSError, ValueError) as err:
                raise DataError(f"{path}: cannot read the image ({err})") from err
            start = time.perf_counter()
            try:
                face, found = detect_or_frame(img, rec, no_face, name=str(path))
            except NoFaceError:
                raise DataError(f"{path}: no face found (face.align.no_face=error)") from None
            if not found:
                missed.append(row["path"])
            mid = time.perf_counter()
            crop = aligned_rgb(img, face, rec)
            t_detect, t_align = t_detect + mid - start, t_align + time.perf_counter() - mid
            dest = (work / row["path"]).with_suffix(".png")
            dest.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(crop, "RGB").save(dest)
            row["path"] = dest.relative_to(work).as_posix()
            if row["split"] == "train":
                x = crop.reshape(-1, 3).astype(np.float64) / 255.0
                sums, sq, npix = sums + x.sum(0), sq + (x ** 2).sum(0), npix + len(x)
        mean = sums / max(npix, 1)
        std = np.sqrt(np.maximum(sq / max(npix, 1) - mean ** 2, 1e-12))
        with open(work / "manifest.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        new_meta = {**meta, "channels": 3, "image_size": [size, size],
                    "mean": [round(float(m), 6) for m in mean], "std": [round(float(s), 6) for s in std],
                    "aligned_from": str(source)}
        (work / "dataset.json").write_text(json.dumps(new_meta, indent=2) + "\n")
        n = len(rows)
        report = {
            "source": str(source), "images": n, "detected": n - len(missed), "detection_rate": (n - len(missed)) / n,
            "no_face": missed, "no_face_policy": no_face, "detector": detector, "upsample": upsample,
            "size": size, "padding": padding,
            "ms_per_face": {"detection": round(1e3 * t_detect / n, 3), "alignment": round(1e3 * t_align / n, 3)},
        }
        # timings vary run to run: the stage puts them in a metrics file, not in the (DVC-cached) folder
        write_json(work / "alignment.json", {k: v for k, v in report.items() if k != "ms_per_face"})
        shutil.rmtree(out, ignore_errors=True)
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return report
