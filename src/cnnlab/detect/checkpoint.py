"""Loading detector checkpoints safely (``weights_only=True``), whatever the family."""

from __future__ import annotations

from pathlib import Path

from .module import DetectorModule


def families() -> dict[str, type[DetectorModule]]:
    """Detector kind (``hparams.kind``, the config's ``detector.kind``) → LightningModule class."""
    from .rcnn import FasterRCNN, RCNNMini
    from .yolo.module import YOLO

    return {cls.kind: cls for cls in (YOLO, FasterRCNN, RCNNMini)}


def load_detector(path: str | Path) -> DetectorModule:
    """Rebuild a trained detector (eval mode) from its checkpoint.

    Raises:
        cnnlab.checkpoint.CheckpointMissing: no such file (a ``FileNotFoundError``).
        cnnlab.checkpoint.CheckpointError: truncated, refused (pickles objects), or not a detector's
            (e.g. an image classifier's checkpoint) (a ``ValueError``).
    """
    from ..checkpoint import CheckpointMismatch, load_weights, read_lightning

    ckpt = read_lightning(path, "detector checkpoint")
    hp = dict(ckpt["hyper_parameters"])
    kind = hp.pop("kind", None)
    known = families()
    if kind not in known:
        what = f"a classifier of {hp['arch']!r}" if "arch" in hp else "no detector"
        raise CheckpointMismatch(f"{path}: not a cnnlab detector checkpoint ({what}; expected hyper_parameters.kind "
                                 f"in {sorted(known)})")
    module = known[kind](**hp)
    load_weights(module, ckpt["state_dict"], f"{path}: its weights")
    return module.eval()
