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


def _face(args: argparse.Namespace) -> int:
    from .face.cli import run

    return run(args)


def _add_face_sources(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gallery", metavar="NPZ", help="encodings to compare with (default: the default pipeline's "
                   "test-people gallery, face.paths.gallery)")
    p.add_argument("--encoder", metavar="CKPT", help="face encoder (default: the one that made the gallery)")
    p.add_argument("--tau", type=float, help="decision threshold on the squared distance (default: the "
                   "calibrated τ stored beside the gallery; verify needs no gallery given --encoder and --tau)")
    p.add_argument("--no-align", action="store_true", help="take the images as given (already-cropped faces); "
                   "default: detect and align them as the gallery's images were (face.align without a gallery)")


def _add_face(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "face", help="face verification (1:1) and recognition (1:K) on precomputed encodings; face detection",
        description="Enroll a folder of people once; verify and identify new images against the stored "
                    "encodings (the encoder runs only on the new images); detect the faces of an image.")
    actions = p.add_subparsers(dest="face_command", required=True, metavar="ACTION")
    e = actions.add_parser("enroll", help="encode a folder of people (DIR/<person>/<images>) into a gallery")
    e.add_argument("dir", help="gallery folder: one sub-folder per person, greyscale or RGB images")
    e.add_argument("--encoder", metavar="CKPT", help="face encoder (default: face.paths.encoder)")
    e.add_argument("--out", metavar="NPZ",
                   help="encodings file (default: data/encodings/<encoder>/<DIR name>.npz)")
    e.add_argument("--threshold", metavar="JSON", help="calibrated threshold record to store beside the gallery "
                   "(default: the calibrate stage's for this encoder, data/encodings/<encoder>/*-val.threshold.json)")
    e.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    e.add_argument("--no-align", action="store_true", help="take the images as given (already-cropped faces); "
                   "default: detect the largest face of each and align it (face.align; the gallery records how)")
    v = actions.add_parser("verify", help="are two face images the same person?")
    v.add_argument("image1")
    v.add_argument("image2")
    _add_face_sources(v)
    i = actions.add_parser("identify", help="the enrolled people nearest to a face image")
    i.add_argument("image")
    i.add_argument("-k", type=int, default=5, help="how many people to list")
    i.add_argument("--index", choices=("exact", "hnsw", "ivf", "ivfpq", "ivfsq"), default="exact",
                   help="search index (cnnlab.face.gallery.search)")
    _add_face_sources(i)
    d = actions.add_parser("detect", help="find the faces in an image; write a copy with the boxes drawn",
                           description="Print each face's box (x0 y0 x1 y1 pixels, right/bottom exclusive), "
                                       "the detector's score and the 5 landmarks, largest first, and write the image "
                                       "with boxes and landmarks drawn (small images are enlarged so that the labels "
                                       "stay readable). Exit status 1 with 'no face found' when there is none.")
    d.add_argument("image")
    d.add_argument("--out", metavar="IMG", help="annotated image (default: reports/faces/detect/<image stem>.faces.png "
                   "under the working directory, never in the image's folder; the format follows the suffix)")
    d.add_argument("--detector", choices=("hog", "haar"), default="hog",
                   help="dlib's HOG detector (default) or OpenCV's Haar cascade (needs opencv-python<5)")
    d.add_argument("--upsample", type=int, metavar="N", help="double the image N times first to find smaller faces "
                   "(default: 1 for hog, 0 for haar)")
    d.add_argument("--min-size", type=int, default=0, metavar="PX", help="ignore faces narrower than this")
    d.add_argument("--largest", action="store_true", help="only the largest face (the one alignment uses)")
    p.set_defaults(handler=_face)


def _add_predict(subparsers: argparse._SubParsersAction) -> None:
    from .predict import add_parser  # light: the handler imports torch itself

    add_parser(subparsers)


def _add_detect(subparsers: argparse._SubParsersAction) -> None:
    from .detect.cli import add_parser

    add_parser(subparsers)


def _add_segment(subparsers: argparse._SubParsersAction) -> None:
    from .segment.cli import add_parser

    add_parser(subparsers)


def _add_visualise(subparsers: argparse._SubParsersAction) -> None:
    from .inside.cli import add_visualise

    add_visualise(subparsers)


def _add_style(subparsers: argparse._SubParsersAction) -> None:
    from .style.cli import add_style

    add_style(subparsers)


_SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _add_summary, _add_face, _add_predict, _add_detect, _add_segment, _add_visualise, _add_style)


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
