"""k identity folds over the people of an aligned face data set (issue 20).

One identity split of the 20 embedded people has 4 test people: a 4-way rank-1 that one probe
moves by about 1/36. Folds score every person once as a test person instead: fold i takes group i
of people as its test people, group i + 1 as its validation people (checkpoints, τ and
hyper-parameters are chosen on them) and trains on the rest. Each method is fitted per fold,
never on that fold's test people, and reported as mean ± standard deviation over the folds.

The N-way difficulty (:func:`nway_rank1`): the probes of each fold's test people, identified
against one enrolled image of *every* person (20-way), all embedded by that fold's model; the
folds' counts are pooled. The other people of the gallery are ones the fold's model was trained
or validated on: distractors it knows.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...data.prepared_split import read_prepared
from .metrics import one_shot_rank1, sq_dists, verification_metrics, verification_pairs


def identity_folds(people: Sequence[str], k: int = 5, seed: int = 0) -> list[dict[str, list[str]]]:
    """``k`` folds ``{"train", "val", "test"}`` of people: each person is a test person exactly once.

    The people are shuffled (``seed``) into ``k`` groups of near-equal size; fold i tests on group
    i, validates on group (i + 1) mod k and trains on the others.

    Raises:
        ValueError: ``k < 3`` (no training people would remain) or more folds than people.
    """
    people = sorted(people)
    if k < 3 or k > len(people):
        raise ValueError(f"identity folds need 3 <= k <= {len(people)} people, got k={k}")
    order = np.random.default_rng(seed).permutation(len(people))
    groups = [sorted(people[j] for j in chunk) for chunk in np.array_split(order, k)]
    return [{"test": groups[i], "val": groups[(i + 1) % k],
             "train": sorted(p for j, g in enumerate(groups) if j not in (i, (i + 1) % k) for p in g)}
            for i in range(k)]


def write_fold(aligned: str | Path, out: str | Path, fold: dict[str, list[str]],
               size: tuple[int, int] | None = None) -> Path:
    """A prepared folder (as :mod:`cnnlab.data.prepare` writes) holding ``aligned``'s images split by ``fold``.

    Images are hard links where the file system allows (copies otherwise); ``dataset.json``'s
    mean and std are recomputed over the fold's training images, as ``align_faces`` does.

    Args:
        size: ``(H, W)`` to store the crops at (antialiased); None: as they are. An encoder that
            resizes its input to ``size`` anyway then augments 15× fewer pixels (39×39 against the
            150×150 crops): on CPU the augmentation, not the network, is what training spends on.

    Raises:
        ValueError: a person of the fold has no images in ``aligned``.
    """
    from PIL import Image

    aligned, out = Path(aligned), Path(out)
    meta, rows = read_prepared(aligned)
    split_of = {p: s for s, people in fold.items() for p in people}
    missing = sorted(set(split_of) - {r["label"] for r in rows})
    if missing:
        raise ValueError(f"{aligned}: no images of {missing}")
    shutil.rmtree(out, ignore_errors=True)
    new_rows, sums, sq, n = [], np.zeros(3), np.zeros(3), 0
    for r in rows:
        split = split_of.get(r["label"])
        if split is None:
            continue
        dest = out / split / r["label"] / Path(r["path"]).name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if size is not None:
            with Image.open(aligned / r["path"]) as img:
                img.convert("RGB").resize((size[1], size[0]), Image.BILINEAR, reducing_gap=None).save(dest)
        else:
            try:
                os.link(aligned / r["path"], dest)
            except OSError:
                shutil.copy2(aligned / r["path"], dest)
        new_rows.append({"path": dest.relative_to(out).as_posix(), "label": r["label"], "split": split})
        if split == "train":
            x = np.asarray(Image.open(dest).convert("RGB"), np.float64).reshape(-1, 3) / 255.0
            sums, sq, n = sums + x.sum(0), sq + (x ** 2).sum(0), n + len(x)
    mean = sums / n
    std = np.sqrt(np.maximum(sq / n - mean ** 2, 1e-12))
    meta = {**meta, **({"image_size": list(size)} if size else {}), "split_by": "identities",
            "mean": [round(float(m), 6) for m in mean],
            "std": [round(float(s), 6) for s in std],
            "counts": {s: sum(r["split"] == s for r in new_rows) for s in ("train", "val", "test")},
            "classes_per_split": {s: sorted(fold[s]) for s in ("train", "val", "test")}}
    (out / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    with open(out / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "label", "split"])
        writer.writeheader()
        writer.writerows(new_rows)
    return out


def scores(emb: np.ndarray, labels: Sequence[str], people: Sequence[str]) -> dict[str, float]:
    """rank-1 (exact one-shot, among ``people`` only), EER and TAR at FAR 1 % over their pairs."""
    labels = np.asarray(labels)
    keep = np.isin(labels, list(people))
    e, y = np.asarray(emb)[keep], labels[keep]
    ver = verification_metrics(*verification_pairs(e, y), fars=(0.01,))
    return {"rank1": one_shot_rank1(e, y), "eer": ver["eer"], "tar_at_far_1pct": ver["tar_at_far_1pct"]}


def nway_rank1(emb: np.ndarray, labels: Sequence[str], probe_people: Sequence[str], trials: int = 50,
               seed: int = 0) -> tuple[int, int]:
    """One-shot identification of ``probe_people``'s images against one image of every person.

    Each trial enrols one random image per person (of all of ``labels``); every other image of a
    probe person is a probe, correct when its own person's enrolled image is strictly the nearest.

    Returns:
        ``(correct, probes)`` summed over the trials (pool them across folds, then divide).
    """
    labels = np.asarray(labels)
    people = sorted(set(labels))
    groups = [np.flatnonzero(labels == p) for p in people]
    code = {p: i for i, p in enumerate(people)}
    dist = sq_dists(emb, emb)
    rng = np.random.default_rng(seed)
    probe_mask = np.isin(labels, list(probe_people))
    correct = total = 0
    for _ in range(trials):
        enrolled = np.array([rng.choice(g) for g in groups])
        probes = np.flatnonzero(probe_mask & ~np.isin(np.arange(len(labels)), enrolled))
        d = dist[np.ix_(probes, enrolled)]
        own_col = np.array([code[p] for p in labels[probes]])
        own = d[np.arange(len(probes)), own_col]
        d[np.arange(len(probes)), own_col] = np.inf
        correct += int((own < d.min(1)).sum())
        total += len(probes)
    return correct, total


def summarize(per_fold: Sequence[dict[str, float]], keys: Sequence[str] = ("rank1", "eer", "tar_at_far_1pct")
              ) -> dict[str, Any]:
    """``{key: {"mean", "std", "folds": [...]}}`` over folds (population standard deviation)."""
    return {k: {"mean": float(np.mean([f[k] for f in per_fold])), "std": float(np.std([f[k] for f in per_fold])),
                "folds": [float(f[k]) for f in per_fold]} for k in keys}
