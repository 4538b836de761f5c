"""The neural style transfer cost, written as the course's seeds write it.

Activations are one image's ``(n_C, n_H, n_W)`` tensors (a leading batch of 1 is accepted).

- ``J_content(C, G) = ½ ‖a^(C) − a^(G)‖²`` at one hidden layer (``norm="seeds"``), or the
  assignment's ``1/(4 n_H n_W n_C) Σ (a^(C) − a^(G))²`` (``norm="assignment"``);
- the Gram ("style") matrix ``G_kk' = Σ_i Σ_j a_ijk a_ijk'`` (``n_C × n_C``, unnormalised);
- the layer style cost ``J_style^[l](S, G) = 1/(2 n_H n_W n_C)² Σ_k Σ_k' (G^(S)_kk' − G^(G)_kk')²``;
- ``J_style(S, G) = Σ_l λ^[l] J_style^[l](S, G)``;
- ``J(G) = α J_content(C, G) + β J_style(S, G)``.
"""

from __future__ import annotations

from typing import Mapping

import torch

CONTENT_NORMS = ("seeds", "assignment")


def _chw(a: torch.Tensor) -> torch.Tensor:
    if a.ndim == 4:
        if a.shape[0] != 1:
            raise ValueError(f"one image's activations expected, got a batch of {a.shape[0]}")
        a = a[0]
    if a.ndim != 3:
        raise ValueError(f"activations must be (n_C, n_H, n_W), got shape {tuple(a.shape)}")
    return a


def content_cost(a_C: torch.Tensor, a_G: torch.Tensor, norm: str = "seeds") -> torch.Tensor:
    """``J_content``: ``½‖a^(C) − a^(G)‖²`` (seeds) or ``Σ(a^(C) − a^(G))² / (4 n_H n_W n_C)`` (assignment)."""
    a_C, a_G = _chw(a_C), _chw(a_G)
    if a_C.shape != a_G.shape:
        raise ValueError(f"content and generated activations differ in shape: {tuple(a_C.shape)} vs {tuple(a_G.shape)}")
    sq = ((a_C - a_G) ** 2).sum()
    if norm == "seeds":
        return 0.5 * sq
    if norm == "assignment":
        return sq / (4 * a_C.numel())
    raise ValueError(f"style.content_norm must be one of {CONTENT_NORMS}, got {norm!r}")


def gram(a: torch.Tensor) -> torch.Tensor:
    """The style matrix ``G_kk' = Σ_i Σ_j a_ijk a_ijk'`` of ``(n_C, n_H, n_W)`` activations: ``(n_C, n_C)``."""
    a = _chw(a)
    flat = a.reshape(a.shape[0], -1)
    return flat @ flat.T


def layer_style_cost_from_gram(G_S: torch.Tensor, a_G: torch.Tensor) -> torch.Tensor:
    """:func:`layer_style_cost` with the style image's Gram matrix computed once beforehand."""
    a_G = _chw(a_G)
    n_C, n_H, n_W = a_G.shape
    if G_S.shape != (n_C, n_C):
        raise ValueError(f"style Gram matrix {tuple(G_S.shape)} does not match {n_C} channels")
    return ((G_S - gram(a_G)) ** 2).sum() / (2 * n_H * n_W * n_C) ** 2


def layer_style_cost(a_S: torch.Tensor, a_G: torch.Tensor) -> torch.Tensor:
    """``J_style^[l](S, G) = Σ_k Σ_k' (G^(S) − G^(G))² / (2 n_H n_W n_C)²`` (``n_H, n_W`` of G's activations).

    S and G may differ in spatial size (the Gram matrix is ``n_C × n_C`` either way); the
    normalisation uses G's.
    """
    return layer_style_cost_from_gram(gram(a_S), a_G)


def style_cost(acts_S: Mapping[str, torch.Tensor], acts_G: Mapping[str, torch.Tensor],
               weights: Mapping[str, float]) -> torch.Tensor:
    """``J_style(S, G) = Σ_l λ^[l] J_style^[l](S, G)`` over the layers of ``weights`` (``{layer: λ}``)."""
    return sum(lam * layer_style_cost(acts_S[layer], acts_G[layer]) for layer, lam in weights.items())


def total_cost(J_content: torch.Tensor, J_style: torch.Tensor, alpha: float = 10.0, beta: float = 40.0) -> torch.Tensor:
    """``J(G) = α J_content + β J_style`` (the assignment's α = 10, β = 40)."""
    return alpha * J_content + beta * J_style
