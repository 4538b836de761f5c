"""Precomputed face encodings: embed a gallery folder once, then verify and identify against it.

An encodings file is an ``.npz`` (loadable with ``allow_pickle=False``) holding

- ``paths``: image paths relative to the gallery root, ``labels``: the person (sub-folder) of each;
- ``embeddings``: float32 [N, D], L2-normalised rows;
- ``encoder_hash`` (sha256 of the encoder checkpoint) and ``encoder_name``: the encoder's identity,
  so embeddings of new images are never compared with those of another encoder;
- ``encoder_path``: where that checkpoint was read from (as given, often relative to the
  repository), so that probes can be encoded by the same encoder without naming it again;
- ``preprocess``: JSON of the alignment recipe the images went through (``null``: taken as given;
  see :mod:`cnnlab.face.detection.preprocess`), so that probes are prepared the same way;
- ``no_face``: gallery images in which no face was found (framed whole);
- ``format``: :data:`FORMAT`.

Input handling: every image is decoded and converted to the encoder's mode (a greyscale PGM is
replicated to RGB for a 3-channel encoder; RGB is reduced to luminance for a 1-channel one), then
resized to the encoder's (H, W) without keeping the aspect ratio (faces are expected to be
cropped roughly as in training), scaled to [0, 1] and normalised with the encoder's statistics.
This applies to probe images of any size or mode as well. An unreadable image or a person
folder without images is an error that names the path.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from ...data.images import DataError, load_image, scan_image_folder
from ...io import atomic_path
from ..models.embedder import checkpoint_hash, load_encoder

FORMAT = "cnnlab-face-encodings/1"
EmbedFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Encodings:
    """Embeddings of a gallery, with where they came from.

    Raises:
        ValueError: inconsistent lengths or an embeddings array that is not 2-D float32.
    """

    paths: list[str]
    labels: list[str]
    embeddings: np.ndarray
    encoder_hash: str
    encoder_name: str
    encoder_path: str = ""
    preprocess: dict[str, Any] | None = None
    no_face: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.paths, self.labels = [str(p) for p in self.paths], [str(x) for x in self.labels]
        e = self.embeddings
        if e.ndim != 2 or e.dtype != np.float32:
            raise ValueError(f"embeddings must be float32 [N, D], got {e.dtype} {e.shape}")
        if not len(self.paths) == len(self.labels) == len(e):
            raise ValueError(f"{len(self.paths)} paths, {len(self.labels)} labels and {len(e)} embeddings differ")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])


def concat_encodings(*parts: Encodings) -> Encodings:
    """Join encodings made by the same encoder (e.g. a gallery and a newly enrolled folder).

    Raises:
        ValueError: the parts come from different encoders or have different sizes.
    """
    if not parts:
        raise ValueError("concat_encodings: nothing to join")
    first = parts[0]
    for p in parts[1:]:
        if p.encoder_hash != first.encoder_hash or p.dim != first.dim:
            raise ValueError(f"cannot join encodings of encoder {p.encoder_name} ({p.encoder_hash[:12]}, {p.dim}-d) "
                             f"with {first.encoder_name} ({first.encoder_hash[:12]}, {first.dim}-d): "
                             f"re-encode with one encoder")
        if p.preprocess != first.preprocess:
            raise ValueError(f"cannot join encodings prepared differently ({p.preprocess} vs {first.preprocess}): "
                             f"re-encode with one alignment recipe")
    return Encodings([x for p in parts for x in p.paths], [x for p in parts for x in p.labels],
                     np.concatenate([p.embeddings for p in parts]), first.encoder_hash, first.encoder_name,
                     first.encoder_path, first.preprocess, [x for p in parts for x in p.no_face])


def encoder_input(hp: dict[str, Any]) -> tuple[str, tuple[int, int], dict[str, list[float]]]:
    """``(PIL mode, (H, W), normalisation)`` that images must be prepared with for an encoder."""
    return ("L" if hp["in_chans"] == 1 else "RGB"), tuple(hp["input_size"]), hp["normalization"]


def image_transform(size: tuple[int, int], normalization: dict[str, list[float]]) -> v2.Compose:
    """uint8 CHW → the encoder's input: the datamodule's ``eval_transform``, rebuilt here so that
    encoding does not import Lightning (a test checks the two agree)."""
    return v2.Compose([v2.Resize(list(size), antialias=True), v2.ToDtype(torch.float32, scale=True),
                       v2.Normalize(list(normalization["mean"]), list(normalization["std"]))])


def _pil(image: str | Path | np.ndarray, mode: str) -> Image.Image:
    """A file (decoded, :func:`load_image`) or a uint8 array as a PIL image in ``mode``."""
    if isinstance(image, np.ndarray):
        return Image.fromarray(image).convert(mode)
    return load_image(image, mode)


@torch.inference_mode()
def embed_images(embed_fn: EmbedFn, paths: Sequence[str | Path | np.ndarray], mode: str, size: tuple[int, int],
                 normalization: dict[str, list[float]], batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """Embed images of any size and mode (converted and resized as the module docstring says).

    Args:
        paths: image files, or uint8 arrays (``H×W`` grey or ``H×W×3`` RGB, e.g. aligned crops).
        progress: show a progress bar (on stderr) over the images.

    Returns:
        float32 [len(paths), D].

    Raises:
        DataError: an image cannot be read (the message names it).
    """
    from tqdm.auto import tqdm

    tf = image_transform(size, normalization)
    out = []
    with tqdm(total=len(paths), desc="encode", unit="face", disable=not progress or len(paths) <= batch_size,
              leave=False) as bar:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            x = torch.stack([tf(v2.functional.pil_to_tensor(_pil(p, mode))) for p in chunk])
            out.append(embed_fn(x).float().cpu().numpy())
            bar.update(len(chunk))
    return np.concatenate(out).astype(np.float32, copy=False)


def encode_folder(embed_fn: EmbedFn, root: str | Path, mode: str, size: tuple[int, int],
                  normalization: dict[str, list[float]], batch_size: int = 64,
                  align: dict[str, Any] | None = None, no_face: str = "whole_image", progress: bool = False
                  ) -> tuple[list[str], list[str], np.ndarray, list[str]]:
    """Embed every image of a gallery folder (one sub-folder per person).

    cnnlab's own drawings (``cnnlab face detect``'s annotated copies, :func:`cnnlab.face.detection.drawing.is_drawing`)
    are not photos of the person and are left out.

    Args:
        align: the alignment recipe to apply first (:mod:`cnnlab.face.detection.preprocess`); None: as given.
        no_face: what to do with an image without a face when aligning: ``whole_image`` or ``error``.
        progress: progress bars over detection + alignment and encoding.

    Returns:
        ``(paths relative to root, person labels, float32 embeddings [N, D], paths without a face)``,
        sorted by path.

    Raises:
        DataError: the folder is missing, has no person folders, a person folder has no images,
            or a file is not a readable image (each message names the path).
        NoFaceError: an image without a face under ``no_face="error"``.
    """
    from ..detection.drawing import is_drawing
    from ..detection.preprocess import prepare_images

    root = Path(root)
    found = scan_image_folder(root)
    items = [(p, label) for p, label in found if not is_drawing(p)]
    empty = sorted({label for _, label in found} - {label for _, label in items})
    if empty:
        raise DataError(f"{root / empty[0]}: holds only cnnlab drawings (cnnlab face detect output), no photos")
    paths = [p for p, _ in items]
    images, missed = prepare_images(paths, align, no_face, progress=progress)
    emb = embed_images(embed_fn, images, mode, size, normalization, batch_size, progress=progress)
    rel = [p.relative_to(root).as_posix() for p in paths]
    return rel, [label for _, label in items], emb, [Path(m).relative_to(root).as_posix() for m in missed]


def encode_with_checkpoint(ckpt: str | Path, root: str | Path, batch_size: int = 64, name: str | None = None,
                           device: str = "cpu", align: dict[str, Any] | None = None,
                           no_face: str = "whole_image", progress: bool = False) -> Encodings:
    """Encode a gallery folder with a face-encoder checkpoint (see :func:`encode_folder`).

    Args:
        ckpt: a :class:`~cnnlab.face.training.module.FaceEncoderModule` checkpoint.
        root: gallery folder.
        batch_size: images per forward pass.
        name: human-readable encoder name (default: the backbone's registry name).
        device: where the encoder runs.
        align: the alignment recipe for a folder of photos (None: images as given). A split folder
            written by the ``align_faces`` stage is already aligned: it is encoded as it is, and
            its own recipe is recorded.
        no_face: ``whole_image`` or ``error``, for images without a face while aligning.
        progress: progress bars over detection + alignment and encoding.
    """
    from ..detection.preprocess import folder_recipe

    done = folder_recipe(root)
    embedder, hp = load_encoder(ckpt)
    embedder.to(device)
    mode, size, norm = encoder_input(hp)
    paths, labels, emb, missed = encode_folder(lambda x: embedder(x.to(device)), root, mode, size, norm, batch_size,
                                               align=None if done else align, no_face=no_face, progress=progress)
    return Encodings(paths, labels, emb, checkpoint_hash(ckpt), name or hp["arch"], str(ckpt),
                     preprocess=done or align, no_face=missed)


def gallery_name(root: str | Path) -> str:
    """Default name of a gallery's encodings: ``<dataset>-<split>`` for a split folder of a prepared
    data set (its parent holds ``dataset.json``), else the folder's own name."""
    root = Path(root).resolve()
    if (root.parent / "dataset.json").is_file():
        return f"{root.parent.name}-{root.name}"
    return root.name


def save_encodings(path: str | Path, enc: Encodings) -> Path:
    """Write an encodings ``.npz`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, format=np.array(FORMAT), paths=np.array(enc.paths, dtype=str),
                 labels=np.array(enc.labels, dtype=str), embeddings=enc.embeddings,
                 encoder_hash=np.array(enc.encoder_hash), encoder_name=np.array(enc.encoder_name),
                 encoder_path=np.array(enc.encoder_path), preprocess=np.array(json.dumps(enc.preprocess)),
                 no_face=np.array(enc.no_face, dtype=str))
    return Path(path)


def load_encodings(path: str | Path) -> Encodings:
    """Read and validate an encodings file.

    Raises:
        FileNotFoundError: no such file.
        DataError: not an encodings file, inconsistent arrays, or embeddings that are not finite
            and L2-normalised (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"encodings not found: {path} (made by the encode_faces stage or `cnnlab face enroll`)")
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["format"]) != FORMAT:
                raise DataError(f"{path}: format {str(z['format'])!r}, expected {FORMAT!r}")
            enc = Encodings(z["paths"].tolist(), z["labels"].tolist(), z["embeddings"],
                            str(z["encoder_hash"]), str(z["encoder_name"]),
                            str(z["encoder_path"]) if "encoder_path" in z.files else "",
                            json.loads(str(z["preprocess"])) if "preprocess" in z.files else None,
                            z["no_face"].tolist() if "no_face" in z.files else [])
    except DataError:
        raise
    except (zipfile.BadZipFile, EOFError, zlib.error) as err:  # cut short, or bytes that fail their CRC
        raise DataError(f"{path}: truncated or corrupt encodings file ({type(err).__name__}: {err}); "
                        f"encode the gallery again") from None
    except (KeyError, ValueError, OSError) as err:
        raise DataError(f"{path}: not a valid face-encodings file ({err})") from None
    norms = np.linalg.norm(enc.embeddings, axis=1)
    if not np.all(np.isfinite(norms)) or np.abs(norms - 1.0).max(initial=0.0) > 1e-3:
        raise DataError(f"{path}: embeddings are not finite, L2-normalised vectors")
    return enc
