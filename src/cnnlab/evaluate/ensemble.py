"""Ensembles of independently trained classifiers: average their softmax outputs.

The course's tip: train several networks independently and average their *outputs*, not their
weights (independently trained weights do not line up) and not their logits (a member with
large logits would outvote the others, and the average would no longer be the mean of what
each member believes).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn

from ..tasks.classifier import load_checkpoint

# What members must share for their probabilities to be averaged over the same inputs and labels.
COMPATIBLE_KEYS = ("classes", "input_size", "in_chans", "normalization")


class ProbabilityModel(nn.Module):
    """A module whose ``forward`` returns class probabilities ``[N, K]`` rather than logits."""


def probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Class probabilities of ``model`` on ``x``: its output if it is a :class:`ProbabilityModel`,
    else the softmax of its logits."""
    return model(x) if isinstance(model, ProbabilityModel) else torch.softmax(model(x), dim=1)


class Ensemble(ProbabilityModel):
    """Mean of the members' softmax probabilities: ``mean_m softmax(member_m(x))``.

    Args:
        members: classifiers returning logits over the same classes, in eval mode.
    """

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([probabilities(m, x) for m in self.members]).mean(0)


def _same(a: Any, b: Any) -> bool:
    """Equality, with float tolerance inside the normalisation statistics."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    return a == b


def check_compatible(hparams: Sequence[dict[str, Any]], paths: Sequence[str | Path],
                     keys: Sequence[str] = COMPATIBLE_KEYS, what: str = "ensemble members") -> None:
    """Check that checkpoints agree on ``keys`` (default: classes, input size, channels, normalisation).

    Args:
        hparams: each checkpoint's hyper-parameters (from ``load_checkpoint``).
        paths: the checkpoint files, in the same order (named in the error).
        keys: the hyper-parameters that must agree.
        what: what the checkpoints are, for the message.

    Raises:
        ValueError: naming every disagreeing key and the two checkpoint files with their values.
    """
    problems = []
    for key in keys:
        for path, hp in zip(paths[1:], hparams[1:]):
            if not _same(hparams[0].get(key), hp.get(key)):
                problems.append(f"{key}: {paths[0]} has {hparams[0].get(key)!r}, {path} has {hp.get(key)!r}")
    if problems:
        raise ValueError(f"{what} disagree on " + "; ".join(problems))


def load_ensemble(paths: Sequence[str | Path]) -> tuple[Ensemble, dict[str, Any]]:
    """Load classifier checkpoints into an :class:`Ensemble`.

    Returns:
        ``(ensemble in eval mode, the first member's hyper-parameters)``; the hyper-parameters
        that matter for inference (:data:`COMPATIBLE_KEYS`) are the same for every member.

    Raises:
        ValueError: no paths, a file that is not a classifier checkpoint, or members that disagree.
        FileNotFoundError: a checkpoint is missing.
    """
    if not paths:
        raise ValueError("an ensemble needs at least one checkpoint")
    loaded = [load_checkpoint(p) for p in paths]
    check_compatible([hp for _, hp in loaded], paths)
    return Ensemble([m for m, _ in loaded]).eval(), loaded[0][1]
