"""Pictures of a style transfer: content | style | result, the loss curves, the frames."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..io import atomic_path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _rgb(x: torch.Tensor) -> np.ndarray:
    return (x.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def save_image(x: torch.Tensor, path: str | Path) -> Path:
    """``(3, H, W)`` [0, 1] → PNG (atomically)."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(_rgb(x)).save(tmp, format="PNG")
    return Path(path)


def panel(content: torch.Tensor, style: torch.Tensor, result: torch.Tensor, path: str | Path,
          title: str = "") -> Path:
    """``content | style | result`` side by side, titled."""
    plt = _plt()
    h, w = content.shape[1:]
    scale = max(1.0, 300 / max(h, w))  # small runs (128 px) drawn bigger, pixels kept sharp
    fig, axes = plt.subplots(1, 3, figsize=(3 * w * scale / 100 + 0.4, h * scale / 100 + 0.7), dpi=100)
    for ax, img, name in zip(axes, (content, style, result), ("content C", "style S", "generated G")):
        ax.imshow(_rgb(img), interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)


def loss_curves(histories: dict[str, Sequence[dict]], path: str | Path, alpha: float, beta: float) -> Path:
    """α·J_content, β·J_style and J per step (log scale), one line style per run."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    styles = ["-", "--", ":", "-."]
    for n, (name, hist) in enumerate(histories.items()):
        steps = [r["step"] for r in hist]
        ls = styles[n % len(styles)]
        prefix = f"{name}: " if len(histories) > 1 else ""
        ax.plot(steps, [r["total"] for r in hist], ls, color="black", label=f"{prefix}J(G)")
        ax.plot(steps, [alpha * r["content"] for r in hist], ls, color="tab:blue", label=f"{prefix}α·J_content")
        ax.plot(steps, [beta * r["style"] for r in hist], ls, color="tab:orange", label=f"{prefix}β·J_style")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("cost (at the start of the step)")
    ax.set_title(f"J(G) = α J_content + β J_style   (α = {alpha:g}, β = {beta:g})", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)


def frames_strip(frames: Sequence[tuple[int, torch.Tensor]], path: str | Path) -> Path:
    """The kept intermediate G side by side, each labelled with its step."""
    plt = _plt()
    n = len(frames)
    h, w = frames[0][1].shape[1:]
    scale = max(1.0, 160 / max(h, w))
    fig, axes = plt.subplots(1, n, figsize=(n * w * scale / 100 + 0.2, h * scale / 100 + 0.5), dpi=100, squeeze=False)
    for ax, (step, img) in zip(axes[0], frames):
        ax.imshow(_rgb(img), interpolation="nearest")
        ax.set_title(f"step {step}", fontsize=9)
        ax.set_axis_off()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)
