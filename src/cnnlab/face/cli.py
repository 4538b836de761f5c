"""``cnnlab face enroll | verify | identify | detect``: the face system on precomputed encodings.

``detect`` finds the faces of one image (dlib HOG or OpenCV Haar, :mod:`.detection.detectors`), prints their
boxes, scores and 5 landmarks and writes a copy of the image with them drawn, by default under
``reports/faces/detect/`` (never into the image's folder; the copy is tagged so that ``enroll``
skips it even when it is moved into a gallery).

The encoder runs only on the new images (the folder being enrolled, or the probes); enrolled
people are their stored encodings. Images are faces in photos: ``enroll`` detects the largest face
of each image and aligns it (``face.align``; ``--no-align`` takes already-cropped faces as given),
and the gallery records how, so ``verify`` and ``identify`` prepare their probes the same way. A
probe without a face is "no face found": ``identify`` answers "not recognised" (exit 0),
``verify`` fails (exit 1). Of several faces, the largest is used.

Defaults point at the default pipeline's outputs, read from the composed config
``conf/faces.yaml`` (``$CNNLAB_CONF`` if set; the default ``encoder`` group, the encoder best on
the validation people): the encoder ``face.paths.encoder``, the gallery ``face.paths.gallery`` and
the threshold calibrated on ``face.calibrate.encodings``. ``enroll --encoder CKPT`` with another
encoder writes under that encoder's own folder (``data/encodings/<name>/``) and takes τ from that
encoder's calibration there (:func:`encoder_home`).

Every known failure (missing file, unreadable image, mismatched encoder, no threshold) is one
line on stderr naming the file and what makes it, with exit status 1.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path
from typing import Any

from ..data.images import DataError
from .detection.detectors import NoFaceError


class FaceError(Exception):
    """A failure the user can fix (the message says how)."""


def config_defaults() -> dict[str, Any]:
    """The ``face`` node of the composed config (default encoder group), resolved; empty outside the repository."""
    conf = Path(os.environ.get("CNNLAB_CONF", "conf")).resolve()
    return _face_config(conf) if (conf / "config.yaml").is_file() else {}


@functools.lru_cache(maxsize=4)
def _face_config(conf: Path) -> dict[str, Any]:
    """Composed once per config folder and process: a Hydra compose costs about 0.25 s, and one
    command asks for several defaults. Callers read the dict; they never change it."""
    from omegaconf import OmegaConf

    from ..config import compose

    return OmegaConf.to_container(compose(conf=conf, config_name="faces").face, resolve=True)


def _default(args: argparse.Namespace, attr: str, key: str) -> str:
    """``args.<attr>`` or the configured ``face.paths.<key>``."""
    value = getattr(args, attr)
    if value:
        return value
    paths = config_defaults().get("paths", {})
    if key not in paths:
        raise FaceError(f"no default for --{attr}: run from the repository root (or set CNNLAB_CONF), "
                        f"or pass --{attr}")
    return paths[key]


def _encoder_for(args: argparse.Namespace, enc) -> str:
    """The checkpoint that made ``enc``: ``--encoder``, else the path it records; checked by hash."""
    from .models.embedder import checkpoint_hash

    ckpt = args.encoder or enc.encoder_path or _default(args, "encoder", "encoder")
    _check_encoder(ckpt)
    if checkpoint_hash(ckpt) != enc.encoder_hash:
        raise FaceError(f"{ckpt} is not the encoder that made the gallery (encoder {enc.encoder_name}, "
                        f"{enc.encoder_hash[:12]}): pass that encoder with --encoder, or enroll again")
    return ckpt


def _check_encoder(ckpt: str | Path) -> None:
    """Raise FaceError naming the stage that makes ``ckpt`` when it does not exist."""
    if Path(ckpt).is_file():
        return
    face = config_defaults()
    configured = face.get("paths", {}).get("encoder")
    pretrained = configured and _same_file(ckpt, configured) and face["encoder"].get("kind") == "pretrained"
    made_by = ("the import_dlib stage: python -m cnnlab.stages.import_dlib, or make run" if pretrained
               else "the train_encoder stage, or import_dlib for dlib's network")
    raise FaceError(f"face encoder checkpoint not found: {ckpt} (made by {made_by}; or pass --encoder)")


def align_config() -> tuple[dict[str, Any], str]:
    """``(recipe, no_face policy)`` of the configured ``face.align`` (built-in defaults outside the repository)."""
    from .detection.preprocess import DEFAULT_RECIPE, recipe

    align = config_defaults().get("align") or {}
    return recipe({**DEFAULT_RECIPE, **align}), align.get("no_face", "whole_image")


def embed_files(ckpt: str, paths: list[str], align: dict[str, Any] | None = None):
    """Embeddings [len(paths), D] of image files (any size or mode) with the encoder ``ckpt``.

    Args:
        align: the alignment recipe to prepare them with (None: as given).

    Raises:
        NoFaceError: ``align`` is set and an image has no face ("no face found in <file>").
    """
    from .models.embedder import load_encoder
    from .gallery.encodings import embed_images, encoder_input
    from .detection.preprocess import prepare_images

    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise FaceError(f"image not found: {missing[0]}")
    images, _ = prepare_images(paths, align, no_face="error")
    embedder, hp = load_encoder(ckpt)
    mode, size, norm = encoder_input(hp)
    return embed_images(embedder, images, mode, size, norm)


def _probe_recipe(args: argparse.Namespace, gallery) -> dict[str, Any] | None:
    """How probes are prepared: as given (``--no-align``), as the gallery's images were, or ``face.align``."""
    if args.no_align:
        return None
    if gallery is not None and gallery.encodings is not None:
        return gallery.encodings.preprocess
    return align_config()[0]


def _load_gallery(args: argparse.Namespace):
    """``(Gallery, its encodings path)`` with τ from ``--tau`` or the threshold file beside it."""
    from .gallery.verify import Gallery, threshold_path

    path = _default(args, "gallery", "gallery")
    gallery = Gallery.load(path, index_kind=getattr(args, "index", "exact"))
    if args.tau is not None:
        gallery.tau = args.tau
    if gallery.tau is None:
        raise FaceError(f"no threshold: {threshold_path(path)} not found (written by the calibrate stage or by "
                        f"`cnnlab face enroll` when a calibration exists for this encoder); or pass --tau")
    return gallery, path


def _same_file(a: str | Path, b: str | Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def encoder_home(ckpt: str | Path) -> tuple[str, Path]:
    """``(encoder name, its encodings folder)`` of a checkpoint.

    The configured encoder (``face.encoder``) is known by name; another checkpoint is named after
    its run folder (``models/faces/course39-ids/best.ckpt`` → ``course39``, the ``-<train_on>``
    suffix dropped), and its encodings live beside the configured ones,
    ``data/encodings/<name>/``: where the face stages write that encoder's encodings and τ.
    """
    face = config_defaults()
    paths = face.get("paths", {})
    if paths.get("encoder") and _same_file(ckpt, paths["encoder"]):
        return face["encoder"]["name"], Path(paths["encodings"])
    name = Path(ckpt).resolve().parent.name
    for train_on in face.get("datasets", {}):
        name = name.removesuffix(f"-{train_on}")
    root = Path(paths["encodings"]).parent if paths.get("encodings") else Path("data/encodings")
    return name, root / name


def _threshold_for(args: argparse.Namespace, encoder_hash: str, home: Path) -> tuple[dict | None, Path | None]:
    """``(record, source)``: ``--threshold``, else a calibration of this encoder (matched by hash).

    Looked for: the configured calibration file name (``face.calibrate.encodings``) in the encoder's
    own folder ``home``, then any other calibration there (``*-val.threshold.json``).
    """
    from .gallery.verify import read_threshold, threshold_path

    if args.threshold:
        return read_threshold(args.threshold, encoder_hash), Path(args.threshold)
    calibrated = config_defaults().get("calibrate", {}).get("encodings")
    first = home / threshold_path(calibrated).name if calibrated else None
    candidates = [first] if first is not None else []
    candidates += [c for c in sorted(home.glob("*-val.threshold.json")) if c != first]
    for source in candidates:
        if source.is_file():
            try:
                return read_threshold(source, encoder_hash), source
            except ValueError:                          # calibrated for another encoder: not usable here
                continue
    return None, first


def enroll(args: argparse.Namespace) -> int:
    from .gallery.encodings import encode_with_checkpoint, gallery_name, save_encodings
    from .gallery.verify import save_threshold, threshold_path

    ckpt = _default(args, "encoder", "encoder")
    _check_encoder(ckpt)
    name, home = encoder_home(ckpt)
    out = Path(args.out or home / f"{gallery_name(args.dir)}.npz")
    align, no_face = (None, "whole_image") if args.no_align else align_config()
    enc = encode_with_checkpoint(ckpt, args.dir, batch_size=args.batch_size, name=name, align=align,
                                 no_face=no_face, progress=True)
    record, source = _threshold_for(args, enc.encoder_hash, home)
    save_encodings(out, enc)
    default = config_defaults().get("encoder", {}).get("name")
    which = ("the default encoder" if name == default
             else f"not the default {default}" if default else "given with --encoder")
    print(f"enrolled {len(enc)} images of {len(set(enc.labels))} people from {args.dir} into {out}")
    print(f"encoder {name} ({which}): {ckpt}, sha256 {enc.encoder_hash[:12]}")
    if enc.preprocess:
        p = enc.preprocess
        print(f"faces aligned: {p['detector']} detector, 5 landmarks, {p['size']}×{p['size']} crops"
              + (f"; no face found in {len(enc.no_face)} image(s), framed whole: {', '.join(enc.no_face[:5])}"
                 f"{' ...' if len(enc.no_face) > 5 else ''}" if enc.no_face else ""))
    else:
        print("images taken as given (no alignment)")
    if record:
        save_threshold(out, record)
        print(f"threshold τ = {record['tau']:.4f} (FAR {record['far']:.4f} on validation pairs, target "
              f"{record['target_far']:g}) from {source} → {threshold_path(out)}")
    else:
        threshold_path(out).unlink(missing_ok=True)     # a stale τ of an earlier encoder must not survive
        print(f"no calibrated threshold for this encoder (looked for {source}): verify and identify need "
              f"--tau, or run the calibrate stage with this encoder")
    return 0


def verify(args: argparse.Namespace) -> int:
    from .gallery.verify import Gallery

    if args.encoder and args.tau is not None and not args.gallery:
        ckpt, gallery = args.encoder, Gallery(tau=args.tau)   # both given: no gallery needed
    else:
        gallery, _ = _load_gallery(args)
        ckpt = _encoder_for(args, gallery.encodings)
    try:
        e1, e2 = embed_files(ckpt, [args.image1, args.image2], _probe_recipe(args, gallery))
    except NoFaceError as err:
        raise FaceError(f"{err}: cannot verify (pass --no-align for an already-cropped face)") from None
    v = gallery.verify(e1, e2)
    print(f"distance {v.distance:.4f}, threshold {v.tau:.4f}: {'same person' if v.same else 'different people'}")
    return 0


def identify(args: argparse.Namespace) -> int:
    if args.k < 1:
        raise FaceError(f"-k must be at least 1, got {args.k}")
    gallery, path = _load_gallery(args)
    ckpt = _encoder_for(args, gallery.encodings)
    try:
        emb = embed_files(ckpt, [args.image], _probe_recipe(args, gallery))[0]
    except NoFaceError as err:                    # nobody to recognise: an answer, not a failure
        print(f"{args.image}: {err}")
        print("→ not recognised")
        return 0
    found = gallery.identify(emb, k=args.k)
    print(f"{args.image}: nearest of {len(gallery.people)} enrolled people ({path}), threshold {found.tau:.4f}")
    for rank, (name, dist) in enumerate(found.matches, 1):
        print(f"{rank:>3}. {name:<24} {dist:.4f}{'' if dist <= found.tau else '  (beyond τ)'}")
    print(f"→ {found.name}")
    return 0


def detection_out(image: Path) -> Path:
    """Where ``cnnlab face detect`` draws by default: ``reports/faces/detect/<stem>.faces.png`` under
    the working directory, never inside the image's own folder (a gallery folder would enroll the
    drawing as one more photo): from inside it, the system's temporary folder is used instead."""
    from .detection.drawing import DRAWING_SUFFIX

    out = Path("reports/faces/detect") / f"{image.stem}{DRAWING_SUFFIX}"
    folder = image.resolve().parent
    if folder == out.resolve().parent or folder in out.resolve().parents:
        import tempfile

        out = Path(tempfile.gettempdir()) / "cnnlab-detect" / out.name
    return out


def detect(args: argparse.Namespace) -> int:
    from ..io import atomic_path
    from .detection.align import face_landmarks
    from .detection.detectors import DetectorUnavailable, detect_faces
    from .detection.drawing import draw_boxes, save_drawing
    from .detection.images import as_array

    image = Path(args.image)
    if not image.is_file():
        raise FaceError(f"image not found: {image}")
    out = Path(args.out) if args.out else detection_out(image)
    pixels, _ = as_array(image)
    try:
        faces = detect_faces(pixels, args.detector, upsample=args.upsample, min_size=args.min_size,
                             select="largest" if args.largest else "all", name=str(image))
        marks = [face_landmarks(pixels, f) for f in faces]
    except DetectorUnavailable as err:
        raise FaceError(str(err)) from None
    except ImportError as err:
        raise FaceError(f"face detection needs dlib and OpenCV: pip install 'cnnlab[faces]' ({err})") from None
    drawn = draw_boxes(pixels, faces, landmarks=marks)
    with atomic_path(out) as tmp:
        save_drawing(drawn, tmp)                # the format follows the suffix of --out
    print(f"{image}: {len(faces)} face{'s' if len(faces) > 1 else ''} ({args.detector} detector), largest first")
    for rank, (f, m) in enumerate(zip(faces, marks), 1):
        print(f"{rank:>3}. x0 {f.x0:<5} y0 {f.y0:<5} x1 {f.x1:<5} y1 {f.y1:<5} {f.width}x{f.height}  "
              f"score {f.score:.3f}  landmarks " + " ".join(f"({x:.0f},{y:.0f})" for x, y in m))
    print(f"→ {out} (boxes and the 5 landmarks drawn)")
    return 0


ACTIONS = {"enroll": enroll, "verify": verify, "identify": identify, "detect": detect}


def run(args: argparse.Namespace) -> int:
    """Dispatch ``args.face_command``; known failures become one stderr line and exit status 1."""
    try:
        return ACTIONS[args.face_command](args)
    except (FaceError, DataError, FileNotFoundError, ValueError, KeyError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"cnnlab face {args.face_command}: error: {message}", file=sys.stderr)
        return 1
