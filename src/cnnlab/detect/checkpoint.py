"""Loading detector checkpoints safely (``weights_only=True``), whatever the family."""

from __future__ import annotations

from pathlib import Path

import torch

from .module import DetectorModule


def families() -> dict[str, type[DetectorModule]]:
    """Detector kind (``hparams.kind``, the config's ``detector.kind``) → LightningModule class."""
    from .rcnn import FasterRCNN, RCNNMini
    from .yolo.module import YOLO

    return {cls.kind: cls for cls in (YOLO, FasterRCNN, RCNNMini)}


def load_detector(path: str | Path) -> DetectorModule:
    """Rebuild a trained detector (eval mode) from its checkpoint.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a checkpoint, pickles arbitrary objects, or is not a detector's
            (e.g. an image classifier's checkpoint).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path}: not a loadable checkpoint (weights_only=True): {str(err).splitlines()[0]}") from err
    hp = dict(ckpt.get("hyper_parameters") or {}) if isinstance(ckpt, dict) else {}
    kind = hp.pop("kind", None)
    known = families()
    if kind not in known or "state_dict" not in ckpt:
        what = f"a classifier of {hp['arch']!r}" if "arch" in hp else "no detector"
        raise ValueError(f"{path}: not a cnnlab detector checkpoint ({what}; expected hyper_parameters.kind "
                         f"in {sorted(known)})")
    module = known[kind](**hp)
    module.load_state_dict(ckpt["state_dict"])
    return module.eval()
