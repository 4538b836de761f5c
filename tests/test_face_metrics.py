"""Face metrics against hand-computed cases and brute force."""

import itertools

import numpy as np
import pytest

from cnnlab.face.evaluation.metrics import (calibrate_threshold, dir_at_far, equal_error_rate, evaluate_embeddings,
                                 one_shot_rank1, open_set_identification, roc, threshold_at_far,
                                 verification_metrics, verification_pairs)


def test_perfectly_separable_pairs():
    d = np.array([0.1, 0.2, 0.3, 1.0, 1.5, 2.0, 2.5])
    same = np.array([1, 1, 1, 0, 0, 0, 0], bool)
    m = verification_metrics(d, same)
    assert m["eer"] == 0.0 and m["auc"] == 1.0
    assert m["tar_at_far_1pct"] == 1.0 and m["tar_at_far_0.1pct"] == 1.0
    assert 0.3 < m["tau_at_far_1pct"] < 1.0


def test_known_small_case():
    # genuine 1, 2, 3, 5; impostor 4, 6, 7, 8. τ ∈ [4, 5): FAR = FRR = 1/4, so EER = 0.25.
    # One impostor (4) is nearer than one genuine (5): AUC = 15/16. FAR ≤ 1 % admits no
    # impostor, so τ sits between 3 and 4 (the midpoint 3.5) and TAR = 3/4.
    d = np.array([1, 2, 3, 5, 4, 6, 7, 8], float)
    same = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    m = verification_metrics(d, same)
    assert m["eer"] == pytest.approx(0.25)
    assert m["auc"] == pytest.approx(15 / 16)
    assert m["tar_at_far_1pct"] == 0.75 and m["tau_at_far_1pct"] == 3.5
    assert (m["n_genuine"], m["n_impostor"]) == (4, 4)
    fpr, tpr, tau = roc(d, same)
    assert fpr[-1] == tpr[-1] == 1.0 and np.all(np.diff(tau[1:]) >= 0)


def test_eer_interpolates_between_roc_points():
    # FRR − FAR goes from +0.5 to −0.5 between two points: EER halfway, (0.0 + 0.5) / 2.
    fpr, tpr = np.array([0.0, 0.0, 0.5, 1.0]), np.array([0.0, 0.5, 1.0, 1.0])
    assert equal_error_rate(fpr, tpr) == pytest.approx(0.25)


def test_threshold_at_far_counts_admitted_impostors():
    imp = np.array([5.0, 1.0, 3.0, 2.0, 4.0])
    assert threshold_at_far(imp, 0.0) == 0.5                  # below every impostor
    assert threshold_at_far(imp, 0.2) == 1.5                  # one impostor admitted
    assert threshold_at_far(imp, 0.39) == 1.5
    assert threshold_at_far(imp, 0.4) == 2.5
    assert threshold_at_far(imp, 1.0) == 5.0


def test_calibration_meets_its_target_far_on_validation_pairs():
    rng = np.random.default_rng(0)
    gen, imp = rng.normal(0.8, 0.3, 400), rng.normal(2.0, 0.3, 3000)
    d, same = np.concatenate([gen, imp]), np.r_[np.ones(400, bool), np.zeros(3000, bool)]
    for target in (0.1, 0.01, 0.001):
        tau, far = calibrate_threshold(d, same, target)
        assert far == np.mean(imp <= tau) and far <= target
        # ... and it is the largest such τ: the next impostor would break the target.
        nxt = np.min(imp[imp > tau])
        assert np.mean(imp <= nxt) > target
        assert not np.any((gen > tau) & (gen < nxt))      # no genuine pair lost to the margin


def _brute_rank1(emb, labels):
    """Enumerate every choice of one enrolled image per person (ties count as errors)."""
    labels = np.asarray(labels)
    people = sorted(set(labels))
    groups = [np.flatnonzero(labels == p) for p in people]
    scores = []
    for enrolled in itertools.product(*groups):
        correct = []
        for q in range(len(labels)):
            if q in enrolled:
                continue
            d = [np.sum((emb[q] - emb[e]) ** 2) for e in enrolled]
            own = people.index(labels[q])
            correct.append(all(d[own] < d[r] for r in range(len(people)) if r != own))
        scores.append(np.mean(correct))
    return float(np.mean(scores))


def test_one_shot_rank1_is_the_average_over_all_enrolment_choices():
    rng = np.random.default_rng(1)
    labels = np.array(["a"] * 3 + ["b"] * 2 + ["c"] * 3 + ["d"])     # d: a single image, a distractor
    emb = rng.normal(size=(len(labels), 3)) + np.repeat(np.eye(3)[[0, 1, 2, 0]], [3, 2, 3, 1], axis=0)
    exact = one_shot_rank1(emb, labels)
    assert exact == pytest.approx(_brute_rank1(emb, labels), abs=1e-12)
    assert 0.0 < exact < 1.0
    assert one_shot_rank1(emb, labels, trials=3000, seed=0) == pytest.approx(exact, abs=0.03)


def test_one_shot_rank1_of_tight_clusters_is_one():
    labels = np.repeat(np.arange(4), 5)
    emb = np.eye(4)[labels] + np.random.default_rng(2).normal(0, 0.01, (20, 4))
    assert one_shot_rank1(emb, labels) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="single image"):
        one_shot_rank1(np.eye(3), [0, 1, 2])


def test_verification_pairs_are_all_unordered_pairs():
    emb = np.array([[0.0], [1.0], [3.0]])
    d, same = verification_pairs(emb, ["x", "x", "y"])
    assert d.tolist() == [1.0, 9.0, 4.0] and same.tolist() == [True, False, False]


def test_dir_at_far_hand_case():
    # Gallery: A at 0, B at 10. Known probes: A at 1 (d 1), B at 12 (d 4), A at 4 (d 16).
    # Unknown probes: at 3 (nearest A, d 9) and at 6 (nearest B, d 16).
    gallery, g_lab = np.array([[0.0], [10.0]]), ["A", "B"]
    probes, p_lab = np.array([[1.0], [12.0], [4.0], [3.0], [6.0]]), ["A", "B", "A", "U", "V"]
    strict = dir_at_far(gallery, g_lab, probes, p_lab, far=0.0)
    assert strict["tau"] == 6.5 and strict["far"] == 0.0                 # between 4 and the impostor 9
    assert strict["dir"] == pytest.approx(2 / 3) and strict["rank1"] == 1.0
    loose = dir_at_far(gallery, g_lab, probes, p_lab, far=0.5)
    assert loose["tau"] == 12.5 and loose["far"] == 0.5 and loose["dir"] == pytest.approx(2 / 3)


def test_open_set_and_full_report_on_separable_embeddings():
    labels = np.repeat(np.arange(6), 4)
    emb = np.eye(6)[labels] + np.random.default_rng(3).normal(0, 0.02, (24, 6))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    o = open_set_identification(emb, labels, far=0.01, trials=5)
    assert o["dir"] == 1.0 and o["far"] == 0.0 and o["n_known_people"] == 3
    report = evaluate_embeddings(emb, labels)
    assert report["rank1"] == pytest.approx(1.0) and report["eer"] == 0.0 and report["open_set_dir"] == 1.0
    assert report["n_people"] == 6 and report["n_genuine"] == 6 * 6
