"""The face encoder f(x): any zoo backbone plus an L2-normalised embedding, and loading it back.

Kept free of Lightning so that encoding new images (``cnnlab face``) imports only torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...io import file_sha256
from ...models import create_model


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


DLIB_ARCH = "dlib_face_resnet"
"""``arch`` of dlib's pretrained face ResNet (:mod:`cnnlab.face.models.dlib_resnet`) in face-encoder checkpoints."""


class DlibEmbedder(nn.Module):
    """dlib's face ResNet behind the embedder contract: normalised input → unit 128-d vector.

    Input: RGB ``(N, 3, 150, 150)`` normalised with :data:`cnnlab.face.models.dlib_resnet.NORMALIZATION`
    (what the encoding pipeline does with the checkpoint's ``normalization``). Its ``fc`` layer is
    dlib's ``fc_no_bias`` (256 → 128); parameter names are those of
    :class:`~cnnlab.face.models.dlib_resnet.DlibFaceResNet` under ``net.`` (``net.level0...``, ``net.fc.weight``).
    """

    def __init__(self):
        super().__init__()
        from .dlib_resnet import DlibFaceResNet

        self.net = DlibFaceResNet()
        self.embedding_dim = 128

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net.fc(self.net.forward_normalized(x)), dim=1)


def build_embedder(hp: dict[str, Any]) -> nn.Module:
    """The embedder a face-encoder checkpoint's hyper-parameters describe (random weights).

    ``arch == "dlib_face_resnet"`` gives a :class:`DlibEmbedder`; any other registry name an
    :class:`Embedder` over that backbone.
    """
    if hp["arch"] == DLIB_ARCH:
        if hp.get("embedding_dim", 128) != 128 or hp.get("in_chans", 3) != 3:
            raise ValueError(f"{DLIB_ARCH} embeds RGB images into 128 dimensions; got embedding_dim="
                             f"{hp.get('embedding_dim')}, in_chans={hp.get('in_chans')}")
        return DlibEmbedder()
    return Embedder(hp["arch"], hp["embedding_dim"], hp["in_chans"], hp.get("model_kwargs"))


def pretrained_dlib_checkpoint(out: str | Path, dat: str | Path | None = None) -> Path:
    """Import dlib's face ResNet into a face-encoder checkpoint that every face stage can use.

    The checkpoint has the layout of :class:`~cnnlab.face.training.module.FaceEncoderModule`'s (``hyper_parameters``
    and ``state_dict`` under ``embedder.``), so ``encode_faces``, ``cnnlab face`` and ``evaluate_faces``
    take it unchanged, and ``train_encoder`` can start from it (``face.encoder.init``).

    Args:
        out: checkpoint to write (atomically).
        dat: dlib's ``.dat``; None: the one installed with ``face_recognition_models``.
    """
    from ...io import atomic_path
    from .dlib_dat import read_dlib_dat
    from .dlib_resnet import INPUT_SIZE, NORMALIZATION, model_path

    dat = Path(dat) if dat is not None else model_path()
    state = {f"embedder.net.{k}": v for k, v in read_dlib_dat(dat).items()}
    hp = {"arch": DLIB_ARCH, "in_chans": 3, "input_size": [INPUT_SIZE, INPUT_SIZE], "normalization": NORMALIZATION,
          "model_kwargs": {}, "embedding_dim": 128, "objective": "triplet", "identities": [],
          "source": f"dlib:{dat.name}"}
    with atomic_path(out) as tmp:
        torch.save({"hyper_parameters": hp, "state_dict": state, "epoch": 0}, tmp)
    return Path(out)


def load_encoder(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the embedder of a :class:`FaceEncoderModule` checkpoint (``weights_only=True``).

    Returns:
        ``(embedder in eval mode, hyper-parameters)``; the hyper-parameters give the input
        channels, size and normalisation that images must be prepared with.

    Raises:
        cnnlab.checkpoint.CheckpointMissing: no such checkpoint (a ``FileNotFoundError``).
        cnnlab.checkpoint.CheckpointError: truncated or damaged, refused (pickles objects), not a
            face-encoder checkpoint, or weights that do not fit it (a ``ValueError``).
    """
    from ...checkpoint import CheckpointMismatch, CheckpointMissing, read_lightning

    try:
        ckpt = read_lightning(path, "face-encoder checkpoint", requires=("embedding_dim", "arch"))
    except CheckpointMissing:
        raise CheckpointMissing(f"face encoder checkpoint not found: {path} (made by the train_encoder stage)") from None
    except CheckpointMismatch:
        raise CheckpointMismatch(f"{path}: not a cnnlab face-encoder checkpoint (no hyper_parameters.embedding_dim)") \
            from None
    hp = ckpt["hyper_parameters"]
    embedder = build_embedder(hp)
    from ...checkpoint import load_weights, sub_state

    load_weights(embedder, sub_state(ckpt["state_dict"], "embedder."), f"{path}: its weights")
    return embedder.eval(), dict(hp)


def checkpoint_hash(path: str | Path) -> str:
    """sha256 (hex) of a checkpoint file: the encoder's identity stored with its encodings."""
    return file_sha256(path)
