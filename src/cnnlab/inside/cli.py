"""``cnnlab visualise``: the visualise stage's work on the user's own checkpoint and images."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _fail(command: str, err: BaseException) -> int:
    msg = err.args[0] if isinstance(err, KeyError) and err.args else err
    print(f"cnnlab {command}: error: {msg}", file=sys.stderr)
    return 1


def visualise(args: argparse.Namespace) -> int:
    """Galleries of the top patches per unit for the chosen layers of a checkpoint."""
    from .run import dataset_name, model_name, visualise as run

    layers = [l for part in (args.layers or []) for l in part.split(",") if l]
    out = Path(args.out) / dataset_name(args.data) / model_name(args.model) if args.out_root else Path(args.out)
    try:
        summary = run(args.model, args.data, out, layers=layers or None, n_layers=args.n_layers, units=args.units,
                      k=args.top, max_images=args.max_images)
    except (FileNotFoundError, ValueError, KeyError) as err:
        return _fail("visualise", err)
    for layer, info in summary["layers"].items():
        h, w = info["receptive_field"]
        print(f"{layer}: receptive field {h}x{w}, stride {info['stride'][0]} -> {out / info['file']}")
    return 0


def add_visualise(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "visualise", help="what the units learn: top-9 image patches per unit, one gallery per layer",
        description="Find, over a folder of images, the patches (receptive fields) that most activate each unit "
                    "of the chosen layers of a cnnlab checkpoint, and draw one gallery per layer.")
    p.add_argument("--model", required=True, metavar="CKPT", help="a cnnlab classifier or face-encoder checkpoint")
    p.add_argument("--data", required=True, metavar="DIR", help="folder of images (searched recursively)")
    p.add_argument("--layers", nargs="*", metavar="LAYER",
                   help="named_modules paths (e.g. features.0 features.3; commas work too); default: --n-layers "
                        "convolutions spread over the depth")
    p.add_argument("--n-layers", type=int, default=4, help="layers drawn when --layers is not given (default 4)")
    p.add_argument("--units", type=int, default=16, help="units per layer, the first ones (default 16)")
    p.add_argument("--top", type=int, default=9, help="patches per unit (default 9)")
    p.add_argument("--max-images", type=int, default=1000, help="images searched, evenly spaced (default 1000)")
    p.add_argument("--out", default="reports/visualise", help="output folder (default reports/visualise)")
    p.add_argument("--flat", dest="out_root", action="store_false",
                   help="write into --out itself, not --out/<data set>/<model>/")
    p.set_defaults(handler=visualise)
