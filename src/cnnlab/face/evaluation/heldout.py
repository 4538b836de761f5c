"""Held-out face evaluation: the learned encoder against hand-engineered baselines, on one split.

Every method is scored by :func:`~cnnlab.face.evaluation.metrics.evaluate_embeddings` on the *test* people of
an identity split (people the encoder never saw). The baselines learn their projections from the
*training* people and choose their hyper-parameters on the *validation* people (lowest EER, then
highest one-shot rank-1), exactly as the encoder's checkpoint was chosen: the test people are
looked at once, here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ...data.prepared_split import read_prepared
from .baselines import Eigenfaces, Fisherfaces, LBPHistograms, RawPixels, load_gray
from ..models.embedder import checkpoint_hash, load_encoder
from ..gallery.encodings import Encodings, embed_images, encoder_input, load_encodings
from ..gallery.verify import load_threshold
from .metrics import evaluate_embeddings, verification_pairs
from .report import provenance, write_report


@dataclass
class MethodResult:
    """One method's scores; ``distances``/``same`` are its test pairs (kept for the plots)."""

    name: str
    params: dict[str, Any]
    val: dict[str, float]
    test: dict[str, float]
    distances: np.ndarray = field(repr=False)
    same: np.ndarray = field(repr=False)


@dataclass
class SplitImages:
    """Paths and person labels of one split of a prepared identity split."""

    paths: list[Path]
    labels: np.ndarray


def load_splits(prepared: str | Path) -> dict[str, SplitImages]:
    """The train, val and test splits of a prepared folder (split by identities).

    Raises:
        DataError: the folder is not prepared.
        ValueError: it was split per image, or people appear in two splits.
    """
    prepared = Path(prepared)
    meta, rows = read_prepared(prepared)
    if meta.get("split_by") != "identities":
        raise ValueError(f"{prepared}: split per {meta.get('split_by')}, but held-out face evaluation needs "
                         f"a split by identities (data.split.by=identities)")
    out = {}
    for split in ("train", "val", "test"):
        mine = [r for r in rows if r["split"] == split]
        out[split] = SplitImages([prepared / r["path"] for r in mine], np.array([r["label"] for r in mine]))
    people = [set(out[s].labels) for s in out]
    if people[0] & people[1] or people[0] & people[2] or people[1] & people[2]:
        raise ValueError(f"{prepared}: a person appears in two splits")
    return out


def _score(emb: np.ndarray, labels: np.ndarray, ecfg: dict[str, Any]) -> dict[str, float]:
    return evaluate_embeddings(emb, labels, fars=ecfg["fars"], open_set_far=ecfg["open_set_far"],
                               trials=ecfg["trials"])


def _selection_key(val: dict[str, float]) -> tuple[float, float]:
    return val["eer"], -val["rank1"]


def baseline_candidates(ecfg: dict[str, Any]) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    """Each baseline's hyper-parameter candidates as ``(params, unfitted method)``."""
    return {
        "raw_pixels": [({}, RawPixels())],
        "eigenfaces": [({"n_components": n}, Eigenfaces(n)) for n in ecfg["eigen_components"]],
        "fisherfaces": [({"n_pca": n}, Fisherfaces(n)) for n in ecfg["fisher_pca"]],
        "lbp": [({"grid": list(g)}, LBPHistograms(tuple(g))) for g in ecfg["lbp_grids"]],
    }


def evaluate_baselines(splits: dict[str, SplitImages], ecfg: dict[str, Any]) -> list[MethodResult]:
    """Fit every baseline candidate on the train people, keep the best on val people, score on test.

    Raw pixels, Eigenfaces and Fisherfaces see images resized to ``ecfg["baseline_size"]``; LBP
    sees them at full size (its cells average out the detail).
    """
    size = tuple(ecfg["baseline_size"])
    images = {
        res: {s: load_gray(splits[s].paths, size if res == "small" else None) for s in splits}
        for res in ("small", "full")
    }
    results = []
    for name, candidates in baseline_candidates(ecfg).items():
        imgs = images["full" if name == "lbp" else "small"]
        best = None
        for params, method in candidates:
            method.fit(imgs["train"], splits["train"].labels)
            val = _score(method.embed(imgs["val"]), splits["val"].labels, ecfg)
            if best is None or _selection_key(val) < _selection_key(best[1]):
                best = (params, val, method)
        params, val, method = best
        start = time.perf_counter()
        test_emb = method.embed(imgs["test"])
        ms = 1e3 * (time.perf_counter() - start) / len(test_emb)   # images already decoded and resized
        dist, same = verification_pairs(test_emb, splits["test"].labels)
        results.append(MethodResult(name, params | ({"image_size": list(size)} if name != "lbp" else {}),
                                    val, _score(test_emb, splits["test"].labels, ecfg) | {"ms_per_face": ms},
                                    dist, same))
    return results


def evaluate_encoder(test: Encodings, val: Encodings | None, ecfg: dict[str, Any],
                     params: dict[str, Any]) -> MethodResult:
    """Score precomputed encodings of the test people (and of the val people, when given)."""
    labels = np.asarray(test.labels)
    dist, same = verification_pairs(test.embeddings, labels)
    val_metrics = _score(val.embeddings, np.asarray(val.labels), ecfg) if val is not None else {}
    return MethodResult("encoder", params, val_metrics, _score(test.embeddings, labels, ecfg), dist, same)


def encoding_ms_per_face(embedder: torch.nn.Module, hp: dict[str, Any], paths: Sequence[Path],
                         batch_size: int = 32) -> float:
    """CPU milliseconds per face to encode aligned image files (decode, resize, normalise, forward),
    in batches of ``batch_size``, with the torch threads the process has; the best of two passes."""
    mode, size, norm = encoder_input(hp)
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        embed_images(embedder, paths, mode, size, norm, batch_size)
        best = min(best, time.perf_counter() - start)
    return 1e3 * best / len(paths)


def check_unseen(encoder_identities: Sequence[str] | None, test_people: Sequence[str]) -> None:
    """Raise ValueError when the encoder was trained on any of the test people."""
    seen = sorted(set(encoder_identities or ()) & set(test_people))
    if seen:
        raise ValueError(f"the encoder was trained on test people {seen}: evaluate_faces scores people the "
                         f"encoder never saw (train it with face.train_on=ids)")


def at_threshold(result: MethodResult, tau: float) -> dict[str, float]:
    """FAR and TAR of a fixed (calibrated) τ on a method's test pairs."""
    genuine, impostor = result.distances[result.same], result.distances[~result.same]
    return {"far": float(np.mean(impostor <= tau)), "tar": float(np.mean(genuine <= tau))}


def run_evaluation(test_encodings: str | Path, val_encodings: str | Path, encoder_ckpt: str | Path,
                   prepared: str | Path, out: str | Path, ecfg: dict[str, Any]) -> dict[str, Any]:
    """Score the encoder's test encodings and the baselines; write the report into ``out``.

    Args:
        test_encodings: encodings of the test people (``encode_faces``), with the calibrated τ beside
            them when ``calibrate`` has run.
        val_encodings: encodings of the validation people (their metrics are reported beside).
        encoder_ckpt: the encoder that made both (checked by hash; its training people must not
            include any test person).
        prepared: the prepared identity split (the baselines' images).
        out: report folder.
        ecfg: ``face.evaluate`` config as a dict.

    Returns:
        The content of ``metrics.json``.

    Raises:
        ValueError: encodings from another encoder, or of other people than the split's test people.
    """
    splits = load_splits(prepared)
    test, val = load_encodings(test_encodings), load_encodings(val_encodings)
    digest = checkpoint_hash(encoder_ckpt)
    for path, enc in ((test_encodings, test), (val_encodings, val)):
        if enc.encoder_hash != digest:
            raise ValueError(f"{path} was made by another encoder than {encoder_ckpt}: run encode_faces again")
    for enc, split in ((test, "test"), (val, "val")):
        if sorted(set(enc.labels)) != sorted(set(splits[split].labels)):
            raise ValueError(f"the {split} encodings hold people {sorted(set(enc.labels))}, but the {split} "
                             f"people of {prepared} are {sorted(set(splits[split].labels))}")
    embedder, hp = load_encoder(encoder_ckpt)
    check_unseen(hp.get("identities"), test.labels)
    encoder = evaluate_encoder(test, val, ecfg, {"arch": hp["arch"], "input_size": list(hp["input_size"]),
                                                 "embedding_dim": hp["embedding_dim"]})
    encoder.test["ms_per_face"] = encoding_ms_per_face(embedder, hp, splits["test"].paths)
    # baselines do not depend on the encoder: face.evaluate.baselines=false skips them (compare_faces
    # takes them from another encoder's report of the same split)
    results = [encoder, *(evaluate_baselines(splits, ecfg) if ecfg.get("baselines", True) else [])]
    calibration = load_threshold(test_encodings, test.encoder_hash)
    if calibration:
        calibration = calibration | {f"test_{k}": v for k, v in at_threshold(encoder, calibration["tau"]).items()}
    split = {s: sorted(set(splits[s].labels.tolist())) for s in splits}
    metrics = {
        "split": split,
        "encoder": {"name": test.encoder_name, "checkpoint": str(encoder_ckpt), "hash": digest,
                    "params": encoder.params, "test": encoder.test, "val": encoder.val},
        "baselines": {r.name: {"params": r.params, "test": r.test, "val": r.val} for r in results[1:]},
        "calibration": calibration,
    }
    write_report(out, results, metrics, split, ecfg, test.encoder_name, calibration,
                 provenance(hp, len(split["train"])))
    return metrics


def flat_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The numeric test metrics of every method as ``<method>_<metric>`` (for MLflow)."""
    out = {f"encoder_{k}": v for k, v in metrics["encoder"]["test"].items()}
    for name, m in metrics["baselines"].items():
        out |= {f"{name}_{k}": v for k, v in m["test"].items()}
    if metrics["calibration"]:
        out |= {f"calibrated_{k}": metrics["calibration"][k] for k in ("tau", "test_far", "test_tar")}
    return {k: float(v) for k, v in out.items() if isinstance(v, (int, float))}
