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
        lr: Adam's learning rate (the assignment's 0.01); L-BFGS-B has its own line search.
        steps: optimisation steps (L-BFGS: iterations, at most; it stops early once converged).
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


def _lbfgsb(G: torch.Tensor, evaluate: Callable, s: Settings, record: Callable[[int], None]) -> None:
    """Minimise over G in the box [0, 1] with SciPy's L-BFGS-B, ``s.steps`` iterations at most."""
    import numpy as np
    from scipy.optimize import minimize

    shape = G.shape
    seen: dict[str, np.ndarray] = {}

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        g = torch.from_numpy(x.astype(np.float32)).view(shape).to(G.device).requires_grad_(True)
        J = evaluate(g)
        seen["x"] = x.copy()
        return float(J.detach()), g.grad.double().flatten().cpu().numpy()

    steps = [0]

    def callback(xk: np.ndarray) -> None:
        steps[0] += 1
        with torch.no_grad():
            G.copy_(torch.from_numpy(xk.astype(np.float32)).view(shape).to(G.device))
        if not np.array_equal(seen.get("x"), xk):  # the costs at the accepted point
            fun(xk)
        record(steps[0])

    minimize(fun, G.detach().double().flatten().cpu().numpy(), jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * G.numel(),
             callback=callback, options={"maxiter": s.steps, "maxcor": 50})


def transfer(content: torch.Tensor, style: torch.Tensor, net: FeatureNet, s: Settings,
             on_step: Callable[[dict[str, float]], None] | None = None, progress: bool = True,
             device: str | torch.device = "cpu") -> Result:
    """Neural style transfer by gradient descent on the pixels, clipped to [0, 1] after every step.

    Adam: one update, then the clip; the costs recorded for step k are J at its start.
    L-BFGS: SciPy's L-BFGS-B with the bounds [0, 1], so every iterate is already clipped (a
    clip after an unconstrained L-BFGS step breaks its curvature pairs and its line search:
    J was seen to rise a thousandfold); one step is one iteration, recorded with J after it.

    Args:
        content: C, ``(3, H, W)`` in [0, 1].
        style: S, ``(3, H', W')`` in [0, 1].
        net: the feature network.
        s: the settings.
        on_step: called after every step with ``{"step", "content", "style", "total"}`` (e.g. MLflow).
        progress: a tqdm bar with the current cost.
        device: where the network and G live (e.g. ``"cuda"``); the returned images are on the CPU.
            L-BFGS-B runs in SciPy on the host and moves G and its gradient across every evaluation.

    Raises:
        KeyError: a layer the network does not have.
        ValueError: bad settings.
    """
    s.check()
    layers = [s.content_layer, *s.style_layers]
    for layer in layers:
        net.resolve(layer)
    device = torch.device(device)
    net = net.to(device)
    content, style = content.to(device), style.to(device)
    with torch.no_grad():
        a_C = net(content[None], [s.content_layer])[s.content_layer].detach()
        acts_S = net(style[None], list(s.style_layers))
        G_S = {layer: gram(a).detach() for layer, a in acts_S.items()}
    G = initial_image(content.cpu(), s.init, s.noise, s.seed).to(device)[None].requires_grad_(True)
    last: dict[str, torch.Tensor] = {}

    def costs(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        acts = net(x, layers)
        Jc = content_cost(a_C, acts[s.content_layer], s.content_norm)
        Js = sum(lam * layer_style_cost_from_gram(G_S[layer], acts[layer]) for layer, lam in s.style_layers.items())
        return Jc, Js, total_cost(Jc, Js, s.alpha, s.beta)

    def evaluate(x: torch.Tensor) -> torch.Tensor:
        """J and its gradient at ``x`` (which must require grad); the costs go to ``last``."""
        Jc, Js, J = costs(x)
        J.backward()
        last.update(content=Jc.detach(), style=Js.detach(), total=J.detach())
        return J

    result = Result(G.detach()[0].cpu().clone())
    if s.frame_every:
        result.frames.append((0, result.image))
    bar = tqdm(total=s.steps, desc=f"style transfer ({net.name}, {s.optimizer})", unit="step", disable=not progress)

    def record(step: int) -> None:
        row = {"step": step, **{k: float(v) for k, v in last.items()}}
        result.history.append(row)
        bar.update(1)
        bar.set_postfix(J=f"{row['total']:.4g}")
        if on_step is not None:
            on_step(row)
        if s.frame_every and (step % s.frame_every == 0 or step == s.steps):
            result.frames.append((step, G.detach()[0].cpu().clone()))

    if s.optimizer == "adam":
        opt = torch.optim.Adam([G], lr=s.lr)
        for step in range(1, s.steps + 1):
            opt.zero_grad()
            evaluate(G)
            opt.step()
            with torch.no_grad():
                G.clamp_(0, 1)
            record(step)
    else:
        _lbfgsb(G, evaluate, s, record)
        if s.frame_every and result.frames[-1][0] != len(result.history):  # converged before s.steps
            result.frames.append((len(result.history), G.detach()[0].cpu().clone()))
    bar.close()
    result.image = G.detach()[0].cpu().clone()
    return result
