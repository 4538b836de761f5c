"""Verification (1:1) and recognition (1:K) against precomputed encodings.

The encoder runs only on new images; enrolled people are their stored encodings.

Templates: by default (``template="all"``) every enrolled image is kept and a person's distance
is that of their nearest image. This is exactly the pairwise comparison the threshold τ is
calibrated on (image pairs of validation people), so the calibrated false-accept rate holds per
comparison, and several images of a person cover several poses. ``template="mean"`` keeps one
re-normalised mean embedding per person instead: a smaller index and averaged-out noise, but its
distances are not the ones τ was calibrated on.

τ lives beside the encodings in ``<name>.threshold.json`` (see :func:`calibrate`), tied to the
encoder's hash so that a threshold is never used with another encoder's embeddings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...io import write_json
from .encodings import Encodings, concat_encodings, load_encodings
from ..evaluation.metrics import calibrate_threshold, verification_pairs
from .search import build_index

NOT_RECOGNISED = "not recognised"
TEMPLATES = ("all", "mean")


@dataclass(frozen=True)
class Verification:
    """A 1:1 decision: ``same`` is ``distance <= tau``."""

    distance: float
    tau: float
    same: bool


@dataclass(frozen=True)
class Identification:
    """A 1:K answer: ``matches`` are the top-k (name, distance), nearest first."""

    matches: list[tuple[str, float]]
    tau: float

    @property
    def recognised(self) -> bool:
        return bool(self.matches) and self.matches[0][1] <= self.tau

    @property
    def name(self) -> str:
        """The nearest person, or :data:`NOT_RECOGNISED` when even they are farther than τ."""
        return self.matches[0][0] if self.recognised else NOT_RECOGNISED


class Gallery:
    """Enrolled people and a nearest-neighbour index over their embeddings.

    Args:
        template: ``"all"`` (every image) or ``"mean"`` (one mean embedding per person).
        tau: default decision threshold (squared Euclidean distance).
        index_kind: ``"exact"``, ``"hnsw"``, ``"ivf"``, ``"ivfpq"`` or ``"ivfsq"`` (see :mod:`cnnlab.face.gallery.search`).
        backend: ``"auto"``, ``"faiss"`` or ``"numpy"``.
        index_params: faiss tuning knobs.
    """

    def __init__(self, template: str = "all", tau: float | None = None, index_kind: str = "exact",
                 backend: str = "auto", **index_params):
        if template not in TEMPLATES:
            raise ValueError(f"template must be one of {TEMPLATES}, got {template!r}")
        self.template, self.tau = template, tau
        self._index_args = dict(kind=index_kind, backend=backend, **index_params)
        self.encodings: Encodings | None = None
        self._names: np.ndarray = np.array([], dtype=str)
        self._vectors = np.zeros((0, 0), np.float32)
        self._per_person = 1                            # most index entries of one person
        self._index = None

    @classmethod
    def load(cls, encodings_path: str | Path, template: str = "all", **kwargs) -> "Gallery":
        """A gallery of an encodings file, with τ from its threshold file when there is one."""
        enc = load_encodings(encodings_path)
        record = load_threshold(encodings_path, enc.encoder_hash)
        gallery = cls(template, tau=record["tau"] if record else None, **kwargs)
        gallery.enroll(enc)
        return gallery

    @property
    def people(self) -> list[str]:
        return sorted(set(self.encodings.labels)) if self.encodings else []

    @property
    def index(self):
        """The nearest-neighbour index over the templates (see :mod:`cnnlab.face.gallery.search`), or None."""
        return self._index

    @property
    def encoder_hash(self) -> str | None:
        return self.encodings.encoder_hash if self.encodings else None

    def enroll(self, enc: Encodings) -> None:
        """Add encodings (a person already enrolled gains images). Rebuilds the index.

        Raises:
            ValueError: ``enc`` comes from another encoder than what is enrolled.
        """
        self.encodings = enc if self.encodings is None else concat_encodings(self.encodings, enc)
        labels = np.asarray(self.encodings.labels)
        if self.template == "all":
            self._names, self._vectors = labels, self.encodings.embeddings
        else:
            self._names = np.unique(labels)
            means = np.stack([self.encodings.embeddings[labels == n].mean(0) for n in self._names])
            self._vectors = (means / np.linalg.norm(means, axis=1, keepdims=True)).astype(np.float32)
        self._per_person = int(np.unique(self._names, return_counts=True)[1].max())
        self._index = build_index(self._vectors, metric="l2", **self._index_args)

    def check_encoder(self, encoder_hash: str) -> None:
        """Raise ValueError unless probe embeddings come from the encoder the gallery was made with."""
        if encoder_hash != self.encoder_hash:
            raise ValueError(f"the probe encoder ({encoder_hash[:12]}) is not the gallery's "
                             f"({str(self.encoder_hash)[:12]}): re-encode the gallery with this encoder")

    def _tau(self, tau: float | None) -> float:
        tau = self.tau if tau is None else tau
        if tau is None:
            raise ValueError("no threshold τ: pass tau= or calibrate one (cnnlab.face.gallery.verify.calibrate)")
        return float(tau)

    def verify(self, emb1: np.ndarray, emb2: np.ndarray, tau: float | None = None) -> Verification:
        """Are two embeddings the same person? d = ‖e1 − e2‖² compared with τ."""
        d = float(np.sum((np.asarray(emb1, np.float64) - np.asarray(emb2, np.float64)) ** 2))
        tau = self._tau(tau)
        return Verification(d, tau, d <= tau)

    def verify_claim(self, emb: np.ndarray, name: str, tau: float | None = None) -> Verification:
        """Is this embedding the claimed enrolled person? Uses the person's nearest template.

        Raises:
            KeyError: ``name`` is not enrolled.
        """
        rows = np.flatnonzero(self._names == name)
        if not len(rows):
            raise KeyError(f"{name!r} is not enrolled; enrolled: {', '.join(self.people)}")
        d = float(np.min(np.sum((self._vectors[rows] - np.asarray(emb, np.float32)) ** 2, axis=1)))
        tau = self._tau(tau)
        return Verification(d, tau, d <= tau)

    def identify_many(self, embs: np.ndarray, k: int = 1, tau: float | None = None) -> list[Identification]:
        """:meth:`identify` for a batch of probe embeddings [Q, D] (one index query)."""
        if self._index is None:
            raise ValueError("the gallery is empty: enroll encodings first")
        tau = self._tau(tau)
        # Ask for enough neighbours that k distinct people survive deduplication.
        dists, ids = self._index.search(np.atleast_2d(embs), min(k * self._per_person, len(self._names)))
        out = []
        for drow, irow in zip(dists, ids):
            matches: dict[str, float] = {}
            for d, i in zip(drow, irow):
                if i >= 0 and len(matches) < k:
                    matches.setdefault(str(self._names[i]), float(d))
            out.append(Identification(list(matches.items()), tau))
        return out

    def identify(self, emb: np.ndarray, k: int = 1, tau: float | None = None) -> Identification:
        """The top-k enrolled people nearest to ``emb``; ``.name`` says "not recognised" beyond τ."""
        return self.identify_many(np.atleast_2d(emb), k, tau)[0]


def threshold_path(encodings_path: str | Path) -> Path:
    """``<dir>/<name>.threshold.json`` beside ``<dir>/<name>.npz``."""
    p = Path(encodings_path)
    return p.with_name(f"{p.stem}.threshold.json")


def calibrate(val: Encodings, target_far: float) -> dict:
    """Pick τ for ``target_far`` on all image pairs of validation people (never the gallery's).

    Returns:
        A record with ``tau``, the achieved ``far`` (≤ target), ``tar`` at τ, the pair counts and
        the encoder's identity.
    """
    dist, same = verification_pairs(val.embeddings, val.labels)
    tau, far = calibrate_threshold(dist, same, target_far)
    return {"tau": tau, "far": far, "target_far": target_far, "tar": float(np.mean(dist[same] <= tau)),
            "n_genuine": int(same.sum()), "n_impostor": int((~same).sum()),
            "encoder_hash": val.encoder_hash, "encoder_name": val.encoder_name}


def save_threshold(encodings_path: str | Path, record: dict) -> Path:
    """Write a :func:`calibrate` record beside an encodings file (atomically)."""
    return write_json(threshold_path(encodings_path), record)


def read_threshold(path: str | Path, encoder_hash: str) -> dict:
    """A threshold record (from :func:`calibrate`), checked against the encoder it will be used with.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the record was calibrated with another encoder.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"threshold file not found: {path} (written by the calibrate stage)")
    record = json.loads(path.read_text())
    if record.get("encoder_hash") != encoder_hash:
        raise ValueError(f"{path}: calibrated for encoder {str(record.get('encoder_hash'))[:12]}, but the "
                         f"encodings come from {encoder_hash[:12]}: run calibrate again")
    return record


def load_threshold(encodings_path: str | Path, encoder_hash: str) -> dict | None:
    """The threshold record beside an encodings file, or None when there is none.

    Raises:
        ValueError: the record was calibrated with another encoder.
    """
    path = threshold_path(encodings_path)
    return read_threshold(path, encoder_hash) if path.is_file() else None
