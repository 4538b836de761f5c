"""Optimise the pixels of G to minimise J(G) = α J_content(C, G) + β J_style(S, G)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch
from tqdm import tqdm

from .costs import content_cost, gram, layer_style_cost_from_gram, total_cost
from .features import FeatureNet

INITS = ("content_noise", "noise")
OPTIMIZERS = ("adam", "lbfgs")


@dataclass
class Settings:
    """One style transfer's settings (``conf/style.yaml``'s ``style`` keys of the same names).

    Attributes:
        content_layer: the one hidden layer of J_content.
        style_layers: ``{layer: λ^[l]}``.
        alpha, beta: the weights of J_content and J_style (the assignment's 10 and 40).
        content_norm: ``seeds`` (½‖·‖²) or ``assignment`` (1/(4 n_H n_W n_C)).
        init: ``content_noise`` (C plus uniform noise in ±``noise``, clipped) or ``noise`` (uniform in [0, 1]).
        noise: amplitude of the uniform noise added to C (the assignment's 0.25).
        optimizer: ``adam`` or ``lbfgs``.
        lr: learning rate (the assignment's Adam 0.01; L-BFGS uses 1 with a strong-Wolfe line search).
        steps: optimisation steps (L-BFGS: one iteration each).
        frame_every: keep G every this many steps (0: none) for the frames strip.
        seed: the noise's seed.
    """

    content_layer: str
    style_layers: Mapping[str, float]
    alpha: float = 10.0
    beta: float = 40.0
    content_norm: str = "assignment"
    init: str = "content_noise"
    noise: float = 0.25
    optimizer: str = "adam"
    lr: float = 0.01
    steps: int = 100
    frame_every: int = 0
    seed: int = 0

    def check(self) -> None:
        if self.init not in INITS:
            raise ValueError(f"style.init must be one of {INITS}, got {self.init!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"style.optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.steps < 1:
            raise ValueError(f"style.steps must be at least 1, got {self.steps}")
        if not self.style_layers:
            raise ValueError("style.style_layers is empty")


@dataclass
class Result:
    """The generated image ``(3, H, W)`` in [0, 1], the per-step losses and the kept frames."""

    image: torch.Tensor
    history: list[dict[str, float]] = field(default_factory=list)
    frames: list[tuple[int, torch.Tensor]] = field(default_factory=list)


def initial_image(content: torch.Tensor, init: str, noise: float, seed: int) -> torch.Tensor:
    """G at step 0: C + U(−noise, noise) clipped to [0, 1], or U(0, 1) noise."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(content.shape, generator=g)
    if init == "noise":
        return u
    return (content + (2 * u - 1) * noise).clamp(0, 1)


def transfer(content: torch.Tensor, style: torch.Tensor, net: FeatureNet, s: Settings,
             on_step: Callable[[dict[str, float]], None] | None = None, progress: bool = True) -> Result:
    """Neural style transfer by gradient descent on the pixels, clipped to [0, 1] after every step.

    Args:
        content: C, ``(3, H, W)`` in [0, 1].
        style: S, ``(3, H', W')`` in [0, 1].
        net: the feature network.
        s: the settings.
        on_step: called after every step with ``{"step", "content", "style", "total"}`` (e.g. MLflow).
        progress: a tqdm bar with the current cost.

    Raises:
        KeyError: a layer the network does not have.
        ValueError: bad settings.
    """
    s.check()
    layers = [s.content_layer, *s.style_layers]
    for layer in layers:
        net.resolve(layer)
    with torch.no_grad():
        a_C = net(content[None], [s.content_layer])[s.content_layer].detach()
        acts_S = net(style[None], list(s.style_layers))
        G_S = {layer: gram(a).detach() for layer, a in acts_S.items()}
    G = initial_image(content, s.init, s.noise, s.seed)[None].requires_grad_(True)
    if s.optimizer == "adam":
        opt = torch.optim.Adam([G], lr=s.lr)
    else:
        opt = torch.optim.LBFGS([G], lr=s.lr, max_iter=1, history_size=50, line_search_fn="strong_wolfe")
    last: dict[str, torch.Tensor] = {}

    def closure() -> torch.Tensor:
        opt.zero_grad()
        acts = net(G, layers)
        Jc = content_cost(a_C, acts[s.content_layer], s.content_norm)
        Js = sum(lam * layer_style_cost_from_gram(G_S[layer], acts[layer]) for layer, lam in s.style_layers.items())
        J = total_cost(Jc, Js, s.alpha, s.beta)
        J.backward()
        last.update(content=Jc.detach(), style=Js.detach(), total=J.detach())
        return J

    result = Result(G.detach()[0].clone())
    if s.frame_every:
        result.frames.append((0, result.image))
    bar = tqdm(range(1, s.steps + 1), desc=f"style transfer ({net.name}, {s.optimizer})", unit="step",
               disable=not progress)
    for step in bar:
        opt.step(closure)
        with torch.no_grad():
            G.clamp_(0, 1)
        row = {"step": step, **{k: float(v) for k, v in last.items()}}
        result.history.append(row)
        bar.set_postfix(J=f"{row['total']:.4g}")
        if on_step is not None:
            on_step(row)
        if s.frame_every and (step % s.frame_every == 0 or step == s.steps):
            result.frames.append((step, G.detach()[0].clone()))
    result.image = G.detach()[0].clone()
    return result
