"""Triplet loss, online mining, the siamese binary head and the P×K sampler against direct formulas."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnlab.face.training.losses import (PKSampler, SiameseHead, TripletLoss, all_pairs, batch_hard, batch_semi_hard,
                                binary_pair_loss, pairwise_sq_dists, triplet_loss)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _loop_loss(a, p, n, margin):
    """max(‖f(A) − f(P)‖² − ‖f(A) − f(N)‖² + α, 0), one triplet at a time in plain Python."""
    out = []
    for ai, pi, ni in zip(a.tolist(), p.tolist(), n.tolist()):
        d_ap = sum((x - y) ** 2 for x, y in zip(ai, pi))
        d_an = sum((x - y) ** 2 for x, y in zip(ai, ni))
        out.append(max(d_ap - d_an + margin, 0.0))
    return out


def test_triplet_loss_matches_the_seeds_formula():
    g = torch.Generator().manual_seed(0)
    a, p, n = (torch.randn(7, 5, generator=g, dtype=torch.float64) for _ in range(3))
    expected = _loop_loss(a, p, n, 0.3)
    assert any(v == 0 for v in expected) and any(v > 0 for v in expected)  # both branches of the max
    torch.testing.assert_close(triplet_loss(a, p, n, 0.3, "none"), torch.tensor(expected, dtype=torch.float64))
    assert triplet_loss(a, p, n, 0.3, "sum").item() == pytest.approx(sum(expected))   # J = Σ L
    assert triplet_loss(a, p, n, 0.3, "mean").item() == pytest.approx(sum(expected) / 7)


def test_collapsed_embeddings_cost_exactly_the_margin():
    # The seeds' reason for α: f(img) = 0 satisfies d(A,P) − d(A,N) ≤ 0 but not ≤ −α.
    z = torch.zeros(4, 3)
    assert triplet_loss(z, z, z, 0.2, "none").tolist() == pytest.approx([0.2] * 4)


def test_pairwise_sq_dists_matches_cdist():
    x = torch.randn(9, 4, dtype=torch.float64)
    torch.testing.assert_close(pairwise_sq_dists(x), torch.cdist(x, x) ** 2)


# 1-D embeddings: person 0 at 0, 1, 5; person 1 at 2, 7, 8 (distances are squared differences).
POS_1D = torch.tensor([[0.0], [1.0], [5.0], [2.0], [7.0], [8.0]])
LAB_1D = torch.tensor([0, 0, 0, 1, 1, 1])


def test_batch_hard_picks_the_farthest_positive_and_nearest_negative():
    a, p, n = batch_hard(pairwise_sq_dists(POS_1D), LAB_1D)
    assert a.tolist() == [0, 1, 2, 3, 4, 5]
    assert p.tolist() == [2, 2, 0, 5, 3, 3]   # worked by hand from the positions above
    assert n.tolist() == [3, 3, 4, 1, 2, 2]


def test_batch_hard_agrees_with_brute_force_and_skips_lonely_anchors():
    g = torch.Generator().manual_seed(1)
    emb = torch.randn(13, 4, generator=g)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 3, 4])   # person 4 has no positive
    dist = pairwise_sq_dists(emb)
    a, p, n = batch_hard(dist, labels)
    assert 12 not in a.tolist() and len(a) == 12
    for ai, pi, ni in zip(a.tolist(), p.tolist(), n.tolist()):
        pos = [j for j in range(13) if labels[j] == labels[ai] and j != ai]
        neg = [j for j in range(13) if labels[j] != labels[ai]]
        assert dist[ai, pi] == max(dist[ai, j] for j in pos)
        assert dist[ai, ni] == min(dist[ai, j] for j in neg)


def _semi_hard_case(margin, fallback="farthest"):
    emb = torch.tensor([[0.0], [2.0], [1.0], [2.5], [3.0], [5.0]])   # A, P, then negatives
    labels = torch.tensor([0, 0, 1, 1, 1, 1])
    a, p, n = batch_semi_hard(pairwise_sq_dists(emb), labels, margin, fallback)
    return {(ai, pi): ni for ai, pi, ni in zip(a.tolist(), p.tolist(), n.tolist())}


def test_semi_hard_takes_the_nearest_negative_beyond_the_positive():
    # d(A,P) = 4; negatives at d = 1 (harder than P), 6.25 and 9 (in (4, 4 + α)), 25.
    assert _semi_hard_case(margin=10.0)[(0, 1)] == 3
    # α = 1: no negative violates the margin; the nearest beyond the positive is still chosen
    # (zero loss), as TF Addons' triplet_semihard_loss does, never the hard one at d = 1.
    assert _semi_hard_case(margin=1.0)[(0, 1)] == 3


def test_without_a_semi_hard_negative_the_chosen_one_is_not_the_hardest():
    # P is far (d(A,P) = 36); every negative is nearer: no semi-hard negative exists for (A, P).
    emb = torch.tensor([[0.0], [6.0], [1.0], [2.5], [4.0]])
    labels = torch.tensor([0, 0, 1, 1, 1])
    dist = pairwise_sq_dists(emb)
    hardest = batch_hard(dist, labels)[2][0].item()
    assert hardest == 2
    a, p, n = batch_semi_hard(dist, labels, margin=0.2)                 # TF Addons: the farthest negative
    chosen = dict(zip(zip(a.tolist(), p.tolist()), n.tolist()))[(0, 1)]
    assert chosen == 4 != hardest
    loss = triplet_loss(emb[[0]], emb[[1]], emb[[chosen]], 0.2, "none")
    assert loss.item() == pytest.approx(36 - 16 + 0.2)              # smaller than with the hardest: 36 - 1 + 0.2
    a, p, n = batch_semi_hard(dist, labels, margin=0.2, fallback="skip")
    assert (0, 1) not in set(zip(a.tolist(), p.tolist()))
    assert set(a.tolist()) == {2, 3, 4}                                 # person 1's pairs all have one beyond
    skip = TripletLoss(0.2, "semi_hard_skip").mine(emb, labels)
    assert len(skip[0]) == len(a) < len(TripletLoss(0.2, "semi_hard").mine(emb, labels)[0]) == 2 + 3 * 2


def test_semi_hard_uses_every_anchor_positive_pair_and_obeys_its_rules():
    g = torch.Generator().manual_seed(2)
    emb = F.normalize(torch.randn(12, 3, generator=g), dim=1)
    labels = torch.arange(4).repeat_interleave(3)
    dist = pairwise_sq_dists(emb)
    margin = 0.5
    a, p, n = batch_semi_hard(dist, labels, margin)
    assert len(a) == 4 * 3 * 2   # ordered anchor-positive pairs
    fell_back = 0
    for ai, pi, ni in zip(a.tolist(), p.tolist(), n.tolist()):
        d_ap, negs = dist[ai, pi], [j for j in range(12) if labels[j] != labels[ai]]
        beyond = [j for j in negs if dist[ai, j] > d_ap]
        fell_back += not beyond
        expected = min(beyond, key=lambda j: dist[ai, j]) if beyond else max(negs, key=lambda j: dist[ai, j])
        assert ni == expected
    skipped = batch_semi_hard(dist, labels, margin, fallback="skip")
    assert len(skipped[0]) == len(a) - fell_back
    with pytest.raises(ValueError, match="fallback"):
        batch_semi_hard(dist, labels, margin, fallback="hardest")


def test_triplet_loss_module_equals_loss_on_mined_triplets():
    g = torch.Generator().manual_seed(3)
    emb = F.normalize(torch.randn(12, 8, generator=g), dim=1).requires_grad_()
    labels = torch.arange(3).repeat_interleave(4)
    for miner in ("hard", "semi_hard", "semi_hard_skip"):
        crit = TripletLoss(0.2, miner)
        a, p, n = crit.mine(emb, labels)
        expected = sum(_loop_loss(emb[a].detach(), emb[p].detach(), emb[n].detach(), 0.2)) / len(a)
        loss = crit(emb, labels)
        assert loss.item() == pytest.approx(expected, rel=1e-5)
        loss.backward()
        assert emb.grad is not None and emb.grad.abs().sum() > 0
        emb.grad = None
    with pytest.raises(ValueError, match="miner"):
        TripletLoss(miner="random")


@pytest.mark.parametrize("kind", ["abs", "chi2"])
def test_siamese_head_formula(kind):
    torch.manual_seed(4)
    head = SiameseHead(5, kind).double()
    f_i, f_j = torch.rand(6, 5, dtype=torch.float64), torch.rand(6, 5, dtype=torch.float64)  # non-negative
    w, b = head.linear.weight[0].tolist(), head.linear.bias.item()
    for r in range(6):
        if kind == "abs":
            terms = [w[k] * abs(f_i[r, k] - f_j[r, k]) for k in range(5)]
        else:   # DeepFace's χ²: (f_i − f_j)² / (f_i + f_j)
            terms = [w[k] * (f_i[r, k] - f_j[r, k]) ** 2 / (f_i[r, k] + f_j[r, k]) for k in range(5)]
        y_hat = 1.0 / (1.0 + np.exp(-(float(sum(terms)) + b)))
        assert head.prob(f_i[r:r + 1], f_j[r:r + 1]).item() == pytest.approx(y_hat, rel=1e-6)


def test_chi2_head_stays_finite_for_signed_embeddings():
    head = SiameseHead(4, "chi2")
    f = torch.tensor([[0.5, -0.5, 0.0, 0.7]])
    out = head(f, -f)
    assert torch.isfinite(out).all()


def test_binary_pair_loss_is_balanced_bce_over_all_pairs():
    torch.manual_seed(5)
    head = SiameseHead(3)
    emb = torch.randn(6, 3)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    pairs = list(itertools.combinations(range(6), 2))
    i, j, same = all_pairs(labels)
    assert list(zip(i.tolist(), j.tolist())) == pairs and same.sum() == 3
    total = 0.0
    for (a, b) in pairs:
        logit = head(emb[a:a + 1], emb[b:b + 1]).item()
        y = float(labels[a] == labels[b])
        total += -(12 / 3 * y * np.log(1 / (1 + np.exp(-logit))) + (1 - y) * np.log(1 - 1 / (1 + np.exp(-logit))))
    assert binary_pair_loss(head, emb, labels).item() == pytest.approx(total / len(pairs), rel=1e-5)


def test_pk_sampler_yields_p_distinct_identities_times_k():
    labels = np.repeat(np.arange(5), [6, 6, 6, 3, 2])
    sampler = PKSampler(labels, p=3, k=4, seed=0, batches_per_epoch=20)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 20
    for batch in batches:
        ids, counts = np.unique(labels[batch], return_counts=True)
        assert len(batch) == 12 and len(ids) == 3 and (counts == 4).all()
    used = {int(c) for b in batches for c in labels[b]}
    assert used == set(range(5))
    again = PKSampler(labels, p=3, k=4, seed=0, batches_per_epoch=20)
    assert list(again) == batches                      # seeded
    assert list(again) != batches                      # the next epoch differs
    with pytest.raises(ValueError, match="fewer than P"):
        PKSampler(labels, p=6, k=2)
    with pytest.raises(ValueError, match="single image"):
        PKSampler(np.array([0, 0, 1]), p=2, k=2)
