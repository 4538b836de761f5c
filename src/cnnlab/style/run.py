"""One style transfer from config to files: ``<out>/<content>__<style>{.png,.result.png,.losses.png,.frames.png,.json}``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from .features import FeatureNet, build, style_weights
from .transfer import Result, Settings

DEFAULT_LR = {"adam": 0.01, "lbfgs": 1.0}  # L-BFGS-B ignores it (its own line search)


def feature_net(cfg: Mapping[str, Any]) -> FeatureNet:
    """The feature network ``cfg`` (the ``style`` config node as a dict) names."""
    return build(str(cfg["network"]), cfg.get("weights"), pool=cfg.get("pool", "max"), **dict(cfg.get("random") or {}))


def settings(cfg: Mapping[str, Any], net: FeatureNet) -> Settings:
    """:class:`Settings` from the ``style`` config, the network's default layers where it names none."""
    layers = list(cfg.get("style_layers") or net.defaults["style"])
    opt = str(cfg.get("optimizer", "adam"))
    return Settings(
        content_layer=str(cfg.get("content_layer") or net.defaults["content"]),
        style_layers=style_weights(layers, cfg.get("layer_weights")),
        alpha=float(cfg.get("alpha", 10.0)), beta=float(cfg.get("beta", 40.0)),
        content_norm=str(cfg.get("content_norm", "assignment")), init=str(cfg.get("init", "content_noise")),
        noise=float(cfg.get("noise", 0.25)), optimizer=opt,
        lr=float(cfg["lr"]) if cfg.get("lr") is not None else DEFAULT_LR.get(opt, 0.01),
        steps=int(cfg.get("steps", 100)), frame_every=int(cfg.get("frame_every") or 0), seed=int(cfg.get("seed", 0)))


def resolve_device(name: str | None) -> str:
    """``style.device``: ``cpu``, ``cuda`` (``cuda:N``) or ``auto`` (CUDA when available)."""
    import torch

    name = str(name or "cpu")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"style.device={name}: no CUDA device is available (use style.device=cpu)")
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"style.device must be cpu, cuda[:N] or auto, got {name!r}")
    return name


def outputs(out: str | Path, content: str, style: str) -> dict[str, Path]:
    """The files one transfer writes."""
    from .images import image_name

    stem = f"{image_name(content)}__{image_name(style)}"
    out = Path(out)
    return {"panel": out / f"{stem}.png", "result": out / f"{stem}.result.png", "losses": out / f"{stem}.losses.png",
            "frames": out / f"{stem}.frames.png", "json": out / f"{stem}.json"}


def run(cfg: Mapping[str, Any], files: Mapping[str, Path], on_step: Callable[[dict], None] | None = None,
        progress: bool = True) -> Result:
    """Load C and S, build the network, optimise G, write ``files`` (any subset of :func:`outputs`' keys).

    Every check (images, network, layer names, settings) runs before the first file is written.
    """
    from ..io import write_json
    from .images import load_pair
    from .report import frames_strip, loss_curves, panel, save_image
    from .transfer import transfer

    content, style = load_pair(cfg["content"], cfg["style"], int(cfg.get("size", 256)))
    net = feature_net(cfg)
    s = settings(cfg, net)
    result = transfer(content, style, net, s, on_step=on_step, progress=progress,
                      device=resolve_device(cfg.get("device")))
    title = (f"{net.name} features, {s.optimizer} × {s.steps} steps, α = {s.alpha:g}, β = {s.beta:g}, "
             f"content {s.content_layer}")
    if "panel" in files:
        panel(content, style, result.image, files["panel"], title=title)
    if "result" in files:
        save_image(result.image, files["result"])
    if "losses" in files:
        loss_curves({net.name: result.history}, files["losses"], s.alpha, s.beta)
    if "frames" in files and result.frames:
        frames_strip(result.frames, files["frames"])
    if "json" in files:
        write_json(files["json"], {"content": str(cfg["content"]), "style": str(cfg["style"]), "network": net.name,
                                   "size": list(content.shape[1:]), "content_layer": s.content_layer,
                                   "style_layers": dict(s.style_layers), "alpha": s.alpha, "beta": s.beta,
                                   "optimizer": s.optimizer, "lr": s.lr, "steps": s.steps,
                                   "history": result.history})
    return result
