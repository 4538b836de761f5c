"""The training module of the face encoder f(x) (the encoder itself lives in :mod:`cnnlab.face.models.embedder`)."""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch

from ..models.embedder import DLIB_ARCH, Embedder, build_embedder, checkpoint_hash, load_encoder  # noqa: F401  (re-exported)
from .losses import MINERS, SiameseHead, TripletLoss, binary_pair_loss
from ..evaluation.metrics import one_shot_rank1, verification_metrics, verification_pairs
from ...models.freezing import KeepFrozenInEval, freeze, train_last
from ...tasks.schedules import configure_optimizers


OBJECTIVES = ("triplet", "binary")
STRATEGIES = ("full", "head", "partial")


def set_trainable(embedder: torch.nn.Module, strategy: str, n_blocks: int = 1) -> list[str]:
    """Freeze the embedder for a transfer-learning strategy; returns the trainable parameter names.

    ``full``: everything trains. ``head``: only the embedding layer (``proj``, or dlib's ``fc``).
    ``partial``: the embedding layer and the last ``n_blocks`` blocks of the trunk (dlib: its last
    ``n_blocks`` levels). Blocks and freezing are :mod:`cnnlab.models.freezing`'s: a frozen part
    is in eval mode, and :class:`FaceEncoderModule` keeps it there (its BN statistics do not move).

    Raises:
        ValueError: unknown strategy.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"face.encoder.strategy must be one of {STRATEGIES}, got {strategy!r}")
    if hasattr(embedder, "net"):  # DlibEmbedder
        embedder.net.set_finetune(strategy, n_blocks)
    elif strategy == "full":
        freeze(embedder, False)
    else:
        if strategy == "head":
            freeze(embedder.backbone)
        else:
            train_last(embedder.backbone, n_blocks)
        freeze(embedder.proj, False)
    return [n for n, p in embedder.named_parameters() if p.requires_grad]


class FaceEncoderModule(KeepFrozenInEval, L.LightningModule):
    """Trains an :class:`Embedder` with the triplet or the siamese binary objective.

    Training batches should come from a :class:`~cnnlab.face.training.losses.PKSampler` (P identities ×
    K images). Validation embeds the whole val split and, at epoch end, logs ``val/rank1``
    (exact one-shot rank-1), ``val/eer``, ``val/auc`` and ``val/loss`` (the training objective
    over the whole split, hard mining for the triplet loss). The hyper-parameters are plain types,
    so a checkpoint loads with ``weights_only=True`` and rebuilds the encoder (:func:`load_encoder`).

    Args:
        arch: registry name of the backbone.
        in_chans: input channels.
        input_size: (H, W) the encoder is fed.
        normalization: ``{"mean": [...], "std": [...]}`` of the training images.
        model_kwargs: extra builder kwargs of the backbone.
        embedding_dim: size of f(x).
        objective: ``"triplet"`` or ``"binary"`` (all pairs of the batch through a :class:`SiameseHead`).
        miner: ``"hard"``, ``"semi_hard"`` or ``"semi_hard_skip"`` (triplet objective; see
            :class:`.losses.TripletLoss`).
        margin: α of the triplet loss.
        pair_head: ``"abs"`` or ``"chi2"`` (binary objective).
        identities: names of the training identities (provenance: who the encoder has seen).
        optim: Hydra config (dict) of the optimiser, with ``_partial_: true``.
        scheduler: Hydra config (dict) of an LR scheduler factory, or None.
        init: a face-encoder checkpoint to start from (transfer learning; same ``arch``), or None
            for random initialisation.
        strategy: which parameters train (:func:`set_trainable`): ``full``, ``head`` or ``partial``.
        n_blocks: trunk blocks (dlib: levels) that train under ``partial``.
    """

    def __init__(self, arch: str, in_chans: int, input_size: list[int], normalization: dict[str, list[float]],
                 model_kwargs: dict[str, Any] | None = None, embedding_dim: int = 128, objective: str = "triplet",
                 miner: str = "semi_hard", margin: float = 0.2, pair_head: str = "abs",
                 identities: list[str] | None = None, optim: dict[str, Any] | None = None,
                 scheduler: dict[str, Any] | None = None, init: str | None = None, strategy: str = "full",
                 n_blocks: int = 1):
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        if miner not in MINERS:
            raise ValueError(f"miner must be one of {sorted(MINERS)}, got {miner!r}")
        self.save_hyperparameters()
        self.embedder = build_embedder({"arch": arch, "embedding_dim": embedding_dim, "in_chans": in_chans,
                                        "model_kwargs": model_kwargs})
        if init:
            source, hp = load_encoder(init)
            if hp["arch"] != arch or hp["embedding_dim"] != embedding_dim:
                raise ValueError(f"face.encoder.init={init}: a {hp['arch']} encoder of {hp['embedding_dim']} "
                                 f"dimensions cannot initialise {arch} with {embedding_dim}")
            self.embedder.load_state_dict(source.state_dict())
        self.trainable = set_trainable(self.embedder, strategy, n_blocks)
        self.triplet = TripletLoss(margin, miner)
        self.pair_head = SiameseHead(embedding_dim, pair_head) if objective == "binary" else None
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedder(x)

    def objective(self, emb: torch.Tensor, labels: torch.Tensor, miner: TripletLoss | None = None) -> torch.Tensor:
        """The training loss of a batch of embeddings."""
        if self.pair_head is not None:
            return binary_pair_loss(self.pair_head, emb, labels)
        return (miner or self.triplet)(emb, labels)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.objective(self.embedder(x), y)
        self.log("train/loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val = []

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self._val.append((self.embedder(x), y))

    def on_validation_epoch_end(self) -> None:
        emb = torch.cat([e for e, _ in self._val])
        labels = torch.cat([y for _, y in self._val])
        self._val = []
        # Under DDP the validation loader is not sharded (use_distributed_sampler=False, see
        # cnnlab.face.training.train.trainer_overrides): every rank scores the whole split, so the logged values
        # agree across ranks without a gather, which would repeat every image once per rank.
        for key, value in self.embedding_metrics(emb, labels).items():
            self.log(f"val/{key}", value, prog_bar=key in ("rank1", "eer"))

    def embedding_metrics(self, emb: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        """rank1, eer, auc and loss of a labelled set of embeddings.

        Raises:
            ValueError: fewer than two people, or no person with two images.
        """
        y = labels.cpu().numpy()
        people, counts = np.unique(y, return_counts=True)
        if len(people) < 2 or counts.max() < 2:
            raise ValueError(f"face validation needs at least 2 people and one with 2 images; got "
                             f"{len(people)} people, at most {counts.max()} images each")
        e = emb.float().cpu().numpy()
        ver = verification_metrics(*verification_pairs(e, y))
        loss = self.objective(emb, labels, TripletLoss(self.hparams.margin, "hard"))
        return {"rank1": one_shot_rank1(e, y), "eer": ver["eer"], "auc": ver["auc"], "loss": float(loss)}

    def configure_optimizers(self):
        return configure_optimizers([p for p in self.parameters() if p.requires_grad], self.hparams.optim, self.hparams.scheduler)
