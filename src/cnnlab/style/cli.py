"""``cnnlab style``: the style_transfer stage's work on the user's own images."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..inside.cli import _fail

def style(args: argparse.Namespace) -> int:
    """Neural style transfer of the user's (or built-in) images; ``-o`` gets G, beside it C | S | G and the losses."""
    from ..config import compose, to_dict
    from .run import run

    overrides = [f"style.{k}={v}" for k, v in (("size", args.size), ("steps", args.steps), ("alpha", args.alpha),
                                                ("beta", args.beta), ("optimizer", args.optimizer), ("lr", args.lr),
                                                ("network", args.network), ("weights", args.weights),
                                                ("content_layer", args.content_layer), ("device", args.device)) if v is not None]
    if args.layers:
        overrides.append(f"style.style_layers=[{args.layers}]")
    cfg = to_dict(compose(*overrides, config_name="style"))["style"]
    cfg.update(content=args.content, style=args.style)
    out = Path(args.output)
    if out.suffix.lower() != ".png":
        return _fail("style", ValueError(f"-o {out}: the output must be a .png file"))
    stem = out.with_suffix("")
    files = {"result": out, "panel": Path(f"{stem}.panel.png"), "losses": Path(f"{stem}.losses.png"),
             "json": Path(f"{stem}.json")}
    try:
        result = run(cfg, files, progress=not args.quiet)
    except (FileNotFoundError, ValueError, KeyError) as err:
        return _fail("style", err)
    last = result.history[-1]
    print(f"J = {last['total']:.4g} (content {last['content']:.4g}, style {last['style']:.4g}) after "
          f"{last['step']} steps -> {out}, {files['panel']}, {files['losses']}")
    return 0


def add_style(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "style", help="neural style transfer: G with the content of CONTENT and the style of STYLE",
        description="Minimise J(G) = α J_content(C, G) + β J_style(S, G) over the pixels of G (conf/style.yaml "
                    "gives every default). CONTENT and STYLE are image files or built-in names (astronaut, chelsea, "
                    "coffee, rocket, china, flower, brick, grass, gravel, immunohistochemistry, hubble_deep_field).")
    p.add_argument("content", help="content image C")
    p.add_argument("style", help="style image S")
    p.add_argument("-o", "--output", required=True, metavar="OUT.png",
                   help="G; beside it OUT.panel.png (C | S | G), OUT.losses.png and OUT.json")
    p.add_argument("--size", type=int, help="longer side of G in pixels (default 256)")
    p.add_argument("--steps", type=int, help="optimisation steps (default 200)")
    p.add_argument("--alpha", type=float, help="weight of J_content (default 10)")
    p.add_argument("--beta", type=float, help="weight of J_style (default 40)")
    p.add_argument("--layers", help="style layers, comma-separated (default: the network's five)")
    p.add_argument("--content-layer", help="content layer (default: the network's)")
    p.add_argument("--network", help="random (default) | vgg19 (with --weights) | a cnnlab checkpoint")
    p.add_argument("--weights", help="torchvision-format VGG-19 weight file, for --network vgg19")
    p.add_argument("--optimizer", choices=["adam", "lbfgs"], help="default adam")
    p.add_argument("--lr", type=float, help="learning rate (default 0.01 for Adam, 1 for L-BFGS)")
    p.add_argument("--device", help="cpu (default) | cuda[:N] | auto (CUDA when available)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=style)
