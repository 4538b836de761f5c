"""The face encoder f(x): any zoo backbone plus an L2-normalised embedding, and loading it back.

Kept free of Lightning so that encoding new images (``cnnlab face``) imports only torch.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models import create_model


class Embedder(nn.Module):
    """Backbone → ``pre_logits`` features → Linear → L2 normalisation (‖f(x)‖ = 1 by contract).

    Args:
        arch: registry name of the backbone (built with ``num_classes=0``: no classifier).
        embedding_dim: size of f(x).
        in_chans: input channels.
        model_kwargs: extra builder kwargs of the backbone.
    """

    def __init__(self, arch: str, embedding_dim: int = 128, in_chans: int = 3, model_kwargs: dict | None = None):
        super().__init__()
        self.backbone = create_model(arch, num_classes=0, in_chans=in_chans, **(model_kwargs or {}))
        self.proj = nn.Linear(self.backbone.num_features, embedding_dim)
        self.embedding_dim = embedding_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone.forward_head(self.backbone.forward_features(x), pre_logits=True)
        return F.normalize(self.proj(feats), dim=1)


def load_encoder(path: str | Path) -> tuple[Embedder, dict[str, Any]]:
    """Rebuild the embedder of a :class:`FaceEncoderModule` checkpoint (``weights_only=True``).

    Returns:
        ``(embedder in eval mode, hyper-parameters)``; the hyper-parameters give the input
        channels, size and normalisation that images must be prepared with.

    Raises:
        FileNotFoundError: no such checkpoint.
        ValueError: not a face-encoder checkpoint, or it pickles arbitrary objects.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"face encoder checkpoint not found: {path} (made by the train_encoder stage)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path}: refused to load (weights_only=True): {err}") from err
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not hp or "embedding_dim" not in hp or "arch" not in hp or "state_dict" not in ckpt:
        raise ValueError(f"{path}: not a cnnlab face-encoder checkpoint (no hyper_parameters.embedding_dim)")
    embedder = Embedder(hp["arch"], hp["embedding_dim"], hp["in_chans"], hp.get("model_kwargs"))
    state = {k.removeprefix("embedder."): v for k, v in ckpt["state_dict"].items() if k.startswith("embedder.")}
    embedder.load_state_dict(state)
    return embedder.eval(), dict(hp)


def checkpoint_hash(path: str | Path) -> str:
    """sha256 (hex) of a checkpoint file: the encoder's identity stored with its encodings."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
