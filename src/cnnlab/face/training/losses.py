"""Objectives for learning a face similarity function (course week 4, FaceNet, DeepFace).

Distances are squared Euclidean, as the seeds write them: d(A, P) = ‖f(A) − f(P)‖².

- Triplet loss with margin α: L = max(d(A, P) − d(A, N) + α, 0), over mined triplets.
- Online mining inside a batch of P identities × K images (:class:`PKSampler`):
  ``batch_hard`` (Hermans et al., 2017) and ``batch_semi_hard`` (Schroff et al., 2015).
- The siamese binary-classification head ŷ = σ(Σ_k w_k |f_i,k − f_j,k| + b) and its χ² variant
  (Taigman et al., 2014).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Sampler


def pairwise_sq_dists(emb: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances [B, B] between the rows of ``emb`` [B, D] (clamped at 0)."""
    sq = (emb * emb).sum(1)
    return (sq[:, None] + sq[None, :] - 2.0 * emb @ emb.T).clamp_min(0.0)


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float = 0.2,
                 reduction: str = "mean") -> torch.Tensor:
    """L(A, P, N) = max(‖A − P‖² − ‖A − N‖² + α, 0) for each row; J sums (or averages) them.

    Args:
        anchor, positive, negative: embeddings [T, D], one triplet per row.
        margin: α.
        reduction: ``"mean"``, ``"sum"`` (the seeds' J) or ``"none"`` (per-triplet [T]).
    """
    d_ap = (anchor - positive).pow(2).sum(1)
    d_an = (anchor - negative).pow(2).sum(1)
    losses = F.relu(d_ap - d_an + margin)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    if reduction == "mean":
        # No triplet at all (a batch of one identity) gives a zero that still has a graph.
        return losses.mean() if len(losses) else anchor.sum() * 0.0
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


@torch.no_grad()
def batch_hard(dist: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each anchor, its farthest positive and its nearest negative.

    Anchors without a positive or without a negative in the batch are skipped.

    Args:
        dist: pairwise distances [B, B].
        labels: identity ids [B].

    Returns:
        ``(anchor, positive, negative)`` index tensors of equal length.
    """
    pos, neg = _masks(labels)
    valid = pos.any(1) & neg.any(1)
    hardest_pos = dist.masked_fill(~pos, float("-inf")).argmax(1)
    hardest_neg = dist.masked_fill(~neg, float("inf")).argmin(1)
    anchors = valid.nonzero().squeeze(1)
    return anchors, hardest_pos[anchors], hardest_neg[anchors]


@torch.no_grad()
def batch_semi_hard(dist: torch.Tensor, labels: torch.Tensor, margin: float, fallback: str = "farthest"
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """FaceNet's semi-hard mining: every anchor-positive pair, with a negative farther than the positive.

    For the pair (a, p) the negative is the nearest one with d(a, n) > d(a, p): FaceNet's
    semi-hard triplet, which violates the margin when d(a, n) < d(a, p) + α (and costs nothing
    beyond it). This is TensorFlow Addons' ``triplet_semihard_loss``. A negative nearer than the
    positive, the hard one, is never chosen while a farther one exists: FaceNet warns that those
    collapse training early on. When every negative is nearer than the positive:

    - ``fallback="farthest"``: the farthest negative (the least hard one), as TF Addons does;
    - ``fallback="skip"``: the pair forms no triplet.

    Args:
        dist: pairwise distances [B, B].
        labels: identity ids [B].
        margin: α (kept for the signature shared with the loss; the band's upper end only
            decides whether the chosen triplet has a loss, not which negative is chosen).
        fallback: ``"farthest"`` or ``"skip"``.

    Returns:
        ``(anchor, positive, negative)`` index tensors of equal length.
    """
    if fallback not in ("farthest", "skip"):
        raise ValueError(f"fallback must be 'farthest' or 'skip', got {fallback!r}")
    pos, neg = _masks(labels)
    pos = pos & neg.any(1, keepdim=True)
    a, p = pos.nonzero(as_tuple=True)
    d_ap = dist[a, p][:, None]
    d_an = dist[a]                                      # [T, B]
    negs = neg[a]
    beyond = negs & (d_an > d_ap)
    semi = d_an.masked_fill(~beyond, float("inf")).argmin(1)
    found = beyond.any(1)
    if fallback == "skip":
        return a[found], p[found], semi[found]
    farthest = d_an.masked_fill(~negs, float("-inf")).argmax(1)
    return a, p, torch.where(found, semi, farthest)


MINERS = {"hard": "batch_hard", "semi_hard": "batch_semi_hard (fallback: farthest negative)",
          "semi_hard_skip": "batch_semi_hard (fallback: skip the pair)"}


class TripletLoss(nn.Module):
    """Triplet loss over triplets mined online from a P×K batch.

    Args:
        margin: α (0.2 as in FaceNet, for L2-normalised embeddings where d ∈ [0, 4]).
        miner: ``"hard"`` (batch hard), ``"semi_hard"`` (FaceNet; TF Addons' fallback to the farthest
            negative) or ``"semi_hard_skip"`` (FaceNet; pairs without a semi-hard negative skipped).
        reduction: ``"mean"`` or ``"sum"`` over the mined triplets.
    """

    def __init__(self, margin: float = 0.2, miner: str = "semi_hard", reduction: str = "mean"):
        super().__init__()
        if miner not in MINERS:
            raise ValueError(f"miner must be one of {sorted(MINERS)}, got {miner!r}")
        self.margin, self.miner, self.reduction = margin, miner, reduction

    def mine(self, emb: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Index triplets ``(a, p, n)`` chosen on the current (detached) embeddings."""
        dist = pairwise_sq_dists(emb.detach())
        if self.miner == "hard":
            return batch_hard(dist, labels)
        return batch_semi_hard(dist, labels, self.margin, "skip" if self.miner == "semi_hard_skip" else "farthest")

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        a, p, n = self.mine(emb, labels)
        return triplet_loss(emb[a], emb[p], emb[n], self.margin, self.reduction)


class SiameseHead(nn.Module):
    """Logistic regression on a pair of embeddings: logit = Σ_k w_k φ(f_i,k, f_j,k) + b.

    ``forward`` returns the logit (train with ``BCEWithLogitsLoss``); ``prob`` returns ŷ = σ(logit).

    Args:
        dim: embedding size.
        kind: ``"abs"``: φ = |f_i − f_j| (the course's formula);
            ``"chi2"``: φ = (f_i − f_j)² / (|f_i| + |f_j| + eps), DeepFace's χ² similarity. For
            non-negative features (DeepFace's ReLU outputs) the denominator is exactly f_i + f_j;
            taking magnitudes keeps it positive for signed, L2-normalised embeddings.
        eps: keeps the χ² denominator away from zero.
    """

    def __init__(self, dim: int, kind: str = "abs", eps: float = 1e-6):
        super().__init__()
        if kind not in ("abs", "chi2"):
            raise ValueError(f"kind must be 'abs' or 'chi2', got {kind!r}")
        self.kind, self.eps = kind, eps
        self.linear = nn.Linear(dim, 1)

    def features(self, f_i: torch.Tensor, f_j: torch.Tensor) -> torch.Tensor:
        """The per-component pair features φ [B, D] the logistic regression weighs."""
        if self.kind == "abs":
            return (f_i - f_j).abs()
        return (f_i - f_j).pow(2) / (f_i.abs() + f_j.abs() + self.eps)

    def forward(self, f_i: torch.Tensor, f_j: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(f_i, f_j)).squeeze(1)

    def prob(self, f_i: torch.Tensor, f_j: torch.Tensor) -> torch.Tensor:
        """ŷ: the probability that the two faces are the same person."""
        return torch.sigmoid(self(f_i, f_j))


def all_pairs(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every unordered pair i < j of a batch: ``(i, j, same)`` with ``same`` as float targets."""
    i, j = torch.triu_indices(len(labels), len(labels), offset=1, device=labels.device)
    return i, j, (labels[i] == labels[j]).float()


def binary_pair_loss(head: SiameseHead, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of ``head`` over all pairs of a batch, positives re-weighted.

    A P×K batch has far fewer same-person pairs than different-person ones (P·K(K−1)/2 against
    K²·P(P−1)/2), so positives get ``pos_weight = #neg / #pos`` and both classes count equally.
    """
    i, j, y = all_pairs(labels)
    n_pos = y.sum()
    pos_weight = (len(y) - n_pos) / n_pos.clamp_min(1.0)
    return F.binary_cross_entropy_with_logits(head(emb[i], emb[j]), y, pos_weight=pos_weight)


class PKSampler(Sampler[list[int]]):
    """Batches of P distinct identities × K images each (use as a DataLoader ``batch_sampler``).

    Each batch draws P identities without replacement, then K of each one's images, without
    replacement when it has at least K (with replacement otherwise). Every ``__iter__`` is a new
    epoch with its own seeded stream, so runs are reproducible and epochs differ.

    Args:
        labels: identity of every dataset item.
        p: identities per batch.
        k: images per identity.
        seed: base seed.
        batches_per_epoch: default ``len(labels) // (p * k)`` (about one pass over the images).

    Raises:
        ValueError: fewer than ``p`` identities, or an identity with a single image (it could
            never form a positive pair).
    """

    def __init__(self, labels: Sequence, p: int, k: int, seed: int = 0, batches_per_epoch: int | None = None):
        labels = np.asarray(labels)
        self.groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
        if len(self.groups) < p:
            raise ValueError(f"PKSampler: {len(self.groups)} identities, fewer than P={p}")
        small = [str(labels[g[0]]) for g in self.groups if len(g) < 2]
        if small:
            raise ValueError(f"PKSampler: identities {small} have a single image; need at least 2 each")
        self.p, self.k, self.seed = p, k, seed
        self.batches = batches_per_epoch or max(1, len(labels) // (p * k))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        for _ in range(self.batches):
            batch: list[int] = []
            for g in rng.choice(len(self.groups), size=self.p, replace=False):
                idx = self.groups[g]
                batch.extend(rng.choice(idx, size=self.k, replace=len(idx) < self.k).tolist())
            yield batch
