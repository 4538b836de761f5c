"""Face metrics on embeddings: one-shot identification, verification ROC, open-set DIR, calibration.

Every function takes embeddings (or distances) as numpy arrays, so the learned encoder and the
hand-engineered baselines are scored by the same code. Distances are squared Euclidean and a
pair is accepted as "same person" when its distance is ≤ τ.

Metric names avoid characters MLflow rejects in metric keys (``@``, ``=``, ``%``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances [len(a), len(b)] in float64, clamped at 0."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def _codes(labels: Sequence) -> tuple[np.ndarray, list[np.ndarray]]:
    _, codes = np.unique(np.asarray(labels), return_inverse=True)
    return codes, [np.flatnonzero(codes == c) for c in range(codes.max() + 1)]


def one_shot_rank1(emb: np.ndarray, labels: Sequence, trials: int | None = None, seed: int = 0) -> float:
    """One-shot identification rank-1: enrol one image per person, probe with all the others.

    A probe is correct when its own person's enrolled image is strictly nearer than every other
    person's (a tie counts as an error). The score is averaged over the choice of enrolled images:

    - ``trials=None``: the exact average over *all* choices (every combination of one image per
      person). A probe q of person p with enrolled image e is correct with probability
      Π_{r≠p} (fraction of r's images farther from q than e), so no enumeration is needed.
    - ``trials=n``: the average over ``n`` seeded random choices.

    People with a single image are always enrolled: they act as distractors, never as probes.

    Raises:
        ValueError: no person has two images (there would be no probe).
    """
    emb = np.asarray(emb)
    codes, groups = _codes(labels)
    if all(len(g) < 2 for g in groups):
        raise ValueError("one_shot_rank1: every person has a single image, so there is nothing to probe")
    dist = sq_dists(emb, emb)
    if trials is not None:
        rng = np.random.default_rng(seed)
        return float(np.mean([_rank1_trial(dist, codes, groups, rng) for _ in range(trials)]))
    n_max = max(len(g) for g in groups)
    own = np.full((len(codes), n_max - 1), np.nan)     # d(q, e) for each candidate enrolled e ≠ q
    for g in groups:
        for q in g:
            others = g[g != q]
            own[q, :len(others)] = dist[q, others]
    prob = np.ones_like(own)
    for g in groups:
        farther = (dist[:, g][:, None, :] > own[:, :, None]).mean(-1)
        farther[g] = 1.0                                # a person is no distractor for its own probes
        prob *= farther
    counts = np.array([len(g) for g in groups])[codes]
    correct = np.where(np.isnan(own), 0.0, prob).sum(1) / counts
    return float(correct.sum() / (len(codes) - len(groups)))


def _rank1_trial(dist: np.ndarray, codes: np.ndarray, groups: list[np.ndarray], rng: np.random.Generator) -> float:
    enrolled = np.array([rng.choice(g) for g in groups])
    probes = np.setdiff1d(np.arange(len(codes)), enrolled)
    d = dist[np.ix_(probes, enrolled)]                  # [probes, people]
    own = d[np.arange(len(probes)), codes[probes]]
    d[np.arange(len(probes)), codes[probes]] = np.inf
    return float(np.mean(own < d.min(1)))


def verification_pairs(emb: np.ndarray, labels: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Distances and same-person flags of all unordered pairs i < j."""
    labels = np.asarray(labels)
    i, j = np.triu_indices(len(labels), k=1)
    return sq_dists(emb, emb)[i, j], labels[i] == labels[j]


def _split(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    distances, same = np.asarray(distances, np.float64), np.asarray(same, bool)
    if same.all() or not same.any():
        raise ValueError("need both genuine (same person) and impostor pairs")
    return distances[same], distances[~same]


def threshold_at_far(impostor: np.ndarray, far: float, genuine: np.ndarray | None = None) -> float:
    """The largest τ whose false-accept rate on ``impostor`` distances is ≤ ``far``.

    Accepting d ≤ τ, a FAR ≤ ``far`` allows m = ⌊far · n⌋ impostors in, so τ must stay below the
    (m+1)-th smallest impostor distance s. Any τ between s and the nearest smaller distance
    (impostor or ``genuine``) gives the same FAR and TAR on these pairs; the midpoint is returned,
    which leaves a margin on both sides for new data.
    """
    s = np.sort(np.asarray(impostor, np.float64))
    m = int(np.floor(far * len(s) + 1e-9))
    if m >= len(s):
        return float(s[-1])
    limit = s[m]
    pool = s if genuine is None else np.concatenate([s, np.asarray(genuine, np.float64)])
    below = pool[pool < limit]
    low = below.max() if len(below) else 0.0
    return float((low + limit) / 2.0)


def calibrate_threshold(distances: np.ndarray, same: np.ndarray, target_far: float) -> tuple[float, float]:
    """Pick τ for ``target_far`` on validation pairs.

    Returns:
        ``(τ, the FAR τ achieves on these pairs)``; the achieved FAR is ≤ ``target_far``.
    """
    genuine, impostor = _split(distances, same)
    tau = threshold_at_far(impostor, target_far, genuine)
    return tau, float(np.mean(impostor <= tau))


def roc(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC of the rule "same if d ≤ τ": ``(fpr, tpr, tau)``, every threshold kept."""
    from sklearn.metrics import roc_curve       # imported here: verify/identify never need it

    fpr, tpr, thr = roc_curve(np.asarray(same, bool), -np.asarray(distances, np.float64), drop_intermediate=False)
    return fpr, tpr, -thr


def equal_error_rate(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """The rate where FAR = FRR (1 − TPR), linearly interpolated between ROC points."""
    diff = (1.0 - tpr) - fpr                            # decreases from 1 to −1 along the ROC
    i = int(np.argmax(diff <= 0))
    if i == 0:
        return float(fpr[0])
    t = diff[i - 1] / (diff[i - 1] - diff[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def far_key(far: float) -> str:
    """Metric-name suffix for a FAR: 0.01 → ``1pct``, 0.001 → ``0.1pct``."""
    return f"{far * 100:g}pct"


def verification_metrics(distances: np.ndarray, same: np.ndarray, fars: Sequence[float] = (1e-2, 1e-3)) -> dict:
    """AUC, EER, and TAR (with its τ) at each FAR, over verification pairs.

    TAR at a FAR uses :func:`threshold_at_far`: never interpolated, so it is what a deployed
    threshold would really give on these pairs. With n impostor pairs a FAR below 1/n can only
    be met by accepting no impostor at all; ``n_impostor`` is reported so the resolution is clear.
    """
    from sklearn.metrics import roc_auc_score

    genuine, impostor = _split(distances, same)
    fpr, tpr, _ = roc(distances, same)
    out = {"auc": float(roc_auc_score(np.asarray(same, bool), -np.asarray(distances, np.float64))),
           "eer": equal_error_rate(fpr, tpr), "n_genuine": int(len(genuine)), "n_impostor": int(len(impostor))}
    for far in fars:
        tau = threshold_at_far(impostor, far, genuine)
        out[f"tar_at_far_{far_key(far)}"] = float(np.mean(genuine <= tau))
        out[f"tau_at_far_{far_key(far)}"] = tau
    return out


def dir_at_far(gallery: np.ndarray, gallery_labels: Sequence, probes: np.ndarray, probe_labels: Sequence,
               far: float) -> dict:
    """Open-set identification: detection and identification rate (DIR) at a false-accept rate.

    Probes whose person is enrolled in ``gallery`` are genuine; the rest are impostors (unknown
    people). τ is the largest threshold at which at most ``far`` of the impostors' nearest
    gallery distances are accepted; DIR is the fraction of genuine probes whose nearest gallery
    entry is their own person *and* lies within τ.

    Returns:
        ``dir``, ``tau``, the achieved ``far``, closed-set ``rank1`` of the genuine probes, and counts.
    """
    g_labels, p_labels = np.asarray(gallery_labels), np.asarray(probe_labels)
    d = sq_dists(probes, gallery)
    nearest = d.argmin(1)
    best = d[np.arange(len(p_labels)), nearest]
    known = np.isin(p_labels, g_labels)
    if known.all() or not known.any():
        raise ValueError("dir_at_far: need probes of enrolled people and of unknown people")
    tau = threshold_at_far(best[~known], far, best[known])
    hit = g_labels[nearest[known]] == p_labels[known]
    return {"dir": float(np.mean(hit & (best[known] <= tau))), "tau": tau, "far": float(np.mean(best[~known] <= tau)),
            "rank1": float(np.mean(hit)), "n_known": int(known.sum()), "n_unknown": int((~known).sum())}


def open_set_identification(emb: np.ndarray, labels: Sequence, far: float = 0.01, known_fraction: float = 0.5,
                            trials: int = 10, seed: int = 0) -> dict:
    """DIR at ``far`` averaged over seeded splits of the people into known and unknown.

    Each trial enrols one random image of each known person; the known people's other images and
    every image of the unknown people are the probes.

    Raises:
        ValueError: the split would leave no known or no unknown person.
    """
    emb, labels = np.asarray(emb), np.asarray(labels)
    people = np.unique(labels)
    n_known = int(round(known_fraction * len(people)))
    if not 0 < n_known < len(people):
        raise ValueError(f"open_set_identification: {len(people)} people with known_fraction={known_fraction} "
                         f"leave no known or no unknown person")
    rng = np.random.default_rng(seed)
    runs = []
    for _ in range(trials):
        known = rng.permutation(people)[:n_known]
        enrolled = np.array([rng.choice(np.flatnonzero(labels == p)) for p in known])
        probes = np.setdiff1d(np.arange(len(labels)), enrolled)
        runs.append(dir_at_far(emb[enrolled], labels[enrolled], emb[probes], labels[probes], far))
    return {key: float(np.mean([r[key] for r in runs])) for key in ("dir", "far", "tau", "rank1")} | {
        "target_far": far, "n_known_people": n_known, "trials": trials}


def evaluate_embeddings(emb: np.ndarray, labels: Sequence, fars: Sequence[float] = (1e-2, 1e-3),
                        open_set_far: float = 0.01, trials: int = 10, seed: int = 0) -> dict:
    """Every face metric of one labelled set of embeddings (people unseen in training).

    Returns:
        A flat dict: ``rank1`` (exact one-shot average), the :func:`verification_metrics`, and
        ``open_set_dir`` / ``open_set_far`` from :func:`open_set_identification` (omitted when
        there are fewer than two people to split into known and unknown).
    """
    emb, labels = np.asarray(emb), np.asarray(labels)
    out = {"rank1": one_shot_rank1(emb, labels), "n_images": int(len(labels)),
           "n_people": int(len(np.unique(labels)))}
    out |= verification_metrics(*verification_pairs(emb, labels), fars=fars)
    if out["n_people"] >= 2:
        dir_ = open_set_identification(emb, labels, open_set_far, trials=trials, seed=seed)
        out |= {"open_set_dir": dir_["dir"], "open_set_far": dir_["far"], "open_set_target_far": open_set_far}
    return out
