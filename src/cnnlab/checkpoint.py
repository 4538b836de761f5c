"""The one loader of cnnlab checkpoints and weight files: ``weights_only=True``, with distinct errors.

Every file cnnlab reads back (Lightning checkpoints of the classifier, the face encoder and
fine-tuning, imported dlib weights, users' torchvision weight files) goes through :func:`read`.
A file that cannot be used fails with exactly one of:

* :class:`CheckpointMissing` (a ``FileNotFoundError``): no such file;
* :class:`CheckpointTruncated`: the file is cut short or its bytes are damaged (empty, no zip
  central directory, a failed CRC, an unexpected end of the pickle stream);
* :class:`CheckpointRefused`: the file is intact but pickles Python objects other than tensors
  and plain containers, so ``weights_only=True`` refuses it (it could run code on load);
* :class:`CheckpointMismatch`: its weights do not fit the model (:func:`check_state_dict` names
  the missing and unexpected keys and the mismatched shapes).

All but the first are ``ValueError`` subclasses, so the stages report them as one-line errors.
Messages are plain text (torch's ANSI highlighting is removed).
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn as nn

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = b"\x80"  # torch's legacy (non-zip) format starts with a pickle protocol opcode


class CheckpointMissing(FileNotFoundError):
    """No file at the given path."""


class CheckpointError(ValueError):
    """A checkpoint file exists but cannot be used."""


class CheckpointTruncated(CheckpointError):
    """The file is cut short or damaged."""


class CheckpointRefused(CheckpointError):
    """The file pickles Python objects, which ``weights_only=True`` refuses."""


class CheckpointMismatch(CheckpointError):
    """The file's weights do not fit the model (keys or shapes)."""


def plain(text: str) -> str:
    """``text`` without ANSI escape sequences, on one line."""
    return " ".join(_ANSI.sub("", text).split())


def _refusal_detail(err: BaseException) -> str:
    """The informative part of torch's weights-only refusal: the ``WeightsUnpickler error`` line."""
    text = _ANSI.sub("", str(err))
    for line in text.splitlines():
        if "WeightsUnpickler error:" in line:
            detail = line.split("WeightsUnpickler error:", 1)[1].strip()
            return detail.split(". Please use", 1)[0].rstrip(".")
    return plain(text)[:200]


def _damage(path: Path) -> str | None:
    """Why the file's bytes are damaged (empty, cut short, failed CRC), or None if they look whole."""
    size = path.stat().st_size
    if size == 0:
        return "the file is empty"
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head == _ZIP_MAGIC:
        if not zipfile.is_zipfile(path):
            return f"the zip archive has no central directory ({size:,} bytes): the file was cut short"
        try:
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            return f"the zip archive is damaged ({plain(str(err))})"
        if bad is not None:
            return f"member {bad!r} fails its CRC check: the bytes are damaged"
        return None
    if not head.startswith(_PICKLE_MAGIC):
        return "not a PyTorch file (neither a zip archive nor a pickle stream)"
    return None


def verify(path: str | Path, what: str = "checkpoint") -> Path:
    """Check that ``path`` exists and that its bytes are whole, without loading it.

    Raises:
        CheckpointMissing: no such file.
        CheckpointTruncated: the file is cut short or damaged.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointMissing(f"{what} not found: {path}")
    damage = _damage(path)
    if damage:
        raise CheckpointTruncated(f"{path}: {what} is truncated or corrupt: {damage}")
    return path


def read(path: str | Path, what: str = "checkpoint") -> Any:
    """Load a PyTorch file on the CPU with ``weights_only=True``.

    Args:
        path: the file.
        what: what the file is, for messages (e.g. ``"finetune.source"``, ``"partial checkpoint"``).

    Returns:
        The loaded object (tensors, plain containers and numbers).

    Raises:
        CheckpointMissing: no such file.
        CheckpointTruncated: the file is cut short or damaged.
        CheckpointRefused: the file pickles Python objects.
    """
    path = verify(path, what)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Weights only load failed" in str(err) and "Unsupported" in str(err):
            raise CheckpointRefused(f"{path}: refused: the file pickles Python objects, not just tensors, and cnnlab "
                                    f"loads a {what} only with weights_only=True ({_refusal_detail(err)})") from None
        raise CheckpointTruncated(f"{path}: {what} is truncated or corrupt: {_refusal_detail(err)}") from None
    except (RuntimeError, EOFError, OSError, IndexError, ValueError, KeyError) as err:
        raise CheckpointTruncated(f"{path}: {what} is truncated or corrupt: "
                                  f"{type(err).__name__}: {plain(str(err))[:200]}") from None


def read_lightning(path: str | Path, what: str = "checkpoint", *, requires: tuple[str, ...] = ()) -> dict[str, Any]:
    """:func:`read` a cnnlab Lightning checkpoint: a dict with ``state_dict`` and ``hyper_parameters``.

    Args:
        requires: hyper-parameters the checkpoint must have (e.g. ``("arch", "classes")``).

    Raises:
        CheckpointMissing, CheckpointTruncated, CheckpointRefused: as :func:`read`.
        CheckpointMismatch: not a cnnlab checkpoint of that kind (names what is missing).
    """
    obj = read(path, what)
    hp = obj.get("hyper_parameters") if isinstance(obj, dict) else None
    if not isinstance(hp, Mapping) or not isinstance(obj.get("state_dict"), Mapping):
        raise CheckpointMismatch(f"{path}: not a cnnlab {what} (no state_dict and hyper_parameters)")
    absent = [k for k in requires if k not in hp]
    if absent:
        raise CheckpointMismatch(f"{path}: not a cnnlab {what} (hyper_parameters lack {', '.join(absent)})")
    return obj


def sub_state(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``state`` under ``prefix`` (e.g. ``"model."``), with the prefix removed."""
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """Raise :class:`CheckpointMismatch` naming missing, unexpected and mis-shaped keys of ``state``.

    A mismatch only in the first convolution's input channels gets its own message.
    """
    own = model.state_dict()
    # Older files lack BN's num_batches_tracked; BatchNorm fills it in on load.
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    shapes = [(k, list(state[k].shape), list(own[k].shape)) for k in own
              if k in state and state[k].shape != own[k].shape]
    if not (missing or unexpected or shapes):
        return
    first_conv = next((k for k, v in own.items() if v.ndim >= 3), None)
    if not missing and not unexpected and len(shapes) == 1 and shapes[0][0] == first_conv:
        theirs, ours = shapes[0][1][1], shapes[0][2][1]
        raise CheckpointMismatch(f"{what}: its first convolution takes {theirs} input channel(s) but the target data "
                                 f"has {ours}; prepare the target with data.channels={theirs}")
    raise CheckpointMismatch(f"{what} does not fit the configured model: {len(missing)} missing keys {missing[:3]}, "
                             f"{len(unexpected)} unexpected keys {unexpected[:3]}, {len(shapes)} shape mismatches "
                             f"(key, file, model) {shapes[:3]}")


def load_weights(model: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> nn.Module:
    """Check ``state`` against ``model`` (:func:`check_state_dict`), then load it into ``model`` in place."""
    check_state_dict(model, state, what)
    model.load_state_dict(state, strict=False)  # checked above; only BN's num_batches_tracked may be absent
    return model
