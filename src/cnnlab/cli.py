"""The ``cnnlab`` console script.

Each subcommand is one ``_add_<name>(subparsers)`` function that declares its arguments and sets
``handler``; add it to ``_SUBCOMMANDS``. Handlers import torch and the model zoo themselves, so
``cnnlab --help`` stays fast. A handler returns the exit code, or raises ``CLIError`` for a
usage problem (reported on stderr, exit code 2).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence


class CLIError(Exception):
    """A problem with the user's request (unknown model, malformed option): exit code 2."""


def _summary(args: argparse.Namespace) -> int:
    from .models import create_model, default_input_size, list_models
    from .summary import format_summary, parse_input_shape, summarize

    if args.model not in list_models():
        raise CLIError(f"unknown model {args.model!r}; known models: {', '.join(list_models())}")
    try:
        shape = parse_input_shape(args.input) if args.input else default_input_size(args.model)
    except ValueError as err:
        raise CLIError(str(err)) from None
    kwargs = {"in_chans": shape[0]}
    if args.num_classes is not None:
        kwargs["num_classes"] = args.num_classes
    model = create_model(args.model, **kwargs)
    try:
        summary = summarize(model, shape)
    except RuntimeError as err:  # torch's shape mismatch: the input does not fit this network
        raise CLIError(f"{args.model} cannot run on input {'x'.join(map(str, shape))}: {err}") from None
    print(format_summary(summary, compact=not args.all_layers, title=args.model))
    return 0


def _add_summary(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "summary", help="per-layer table: activation shape/size, parameters, multiply-adds",
        description="Trace one example through a registered model and print the course's cost table.")
    p.add_argument("model", help="registry name (e.g. lenet5, course_lenet_example)")
    p.add_argument("--input", metavar="CxHxW",
                   help="per-example input shape (CxL and CxDxHxW for 1-D/3-D nets); "
                        "default: the model's registered input size")
    p.add_argument("--num-classes", type=int, help="classifier width (default: the builder's)")
    p.add_argument("--all-layers", action="store_true",
                   help="also list activations, dropout and flatten (hidden by default, as in the course)")
    p.set_defaults(handler=_summary)


_SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (_add_summary,)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnlab", description="cnnlab: a reproducible lab for convolutional networks.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except CLIError as err:
        print(f"cnnlab {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader (``| head``) left early: silence the flush at exit, as the docs recommend.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
