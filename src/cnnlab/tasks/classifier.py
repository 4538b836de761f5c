"""The image-classification LightningModule, and loading its checkpoints safely."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from ..checkpoint import load_weights, read_lightning, sub_state
from ..models import create_model
from ..models.freezing import KeepFrozenInEval
from .init import apply_init
from .schedules import configure_optimizers


class ClassificationSteps:
    """Cross-entropy steps, logs and optimiser of a LightningModule whose ``self.model`` maps inputs to logits.

    Shared by :class:`Classifier` and fine-tuning's :class:`~cnnlab.tasks.finetune.cached.CachedHead`
    (whose ``model`` is the head alone), so the cached path cannot drift from training through the
    network. The host sets ``train_acc`` / ``val_acc`` / ``test_acc`` metrics and saves ``optim`` and
    ``scheduler`` hyper-parameters.
    """

    def _step(self, batch, stage: str, metric: MulticlassAccuracy) -> torch.Tensor:
        x, y = batch
        out = self.model(x)
        # Models with auxiliary heads (GoogLeNet) return a tuple in training: main logits first.
        logits, aux = (out[0], out[1:]) if isinstance(out, tuple) else (out, ())
        loss = F.cross_entropy(logits, y) + sum(0.3 * F.cross_entropy(a, y) for a in aux)
        metric(logits, y)
        # sync_dist: under DDP the epoch loss averages every rank's batches (one all-reduce per epoch)
        self.log(f"{stage}/loss", loss, prog_bar=stage != "test", on_step=False, on_epoch=True, sync_dist=True)
        self.log(f"{stage}/acc", metric, prog_bar=True, on_step=False, on_epoch=True)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train", self.train_acc)

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val", self.val_acc)

    def test_step(self, batch, batch_idx):
        return self._step(batch, "test", self.test_acc)

    def configure_optimizers(self):
        return configure_optimizers(self.parameters(), self.hparams.optim, self.hparams.scheduler)


class Classifier(KeepFrozenInEval, ClassificationSteps, L.LightningModule):
    """Cross-entropy classifier around any registered backbone.

    Everything needed to use a checkpoint travels in its hyper-parameters (plain Python types,
    so it loads with ``weights_only=True``): the architecture and its kwargs, the class names,
    input channels and size, and the normalisation. ``num_classes`` is derived from ``classes``.

    Args:
        arch: registry name of the backbone.
        classes: class names; their order defines the label ids.
        in_chans: input channels.
        input_size: (H, W) the model is fed.
        normalization: ``{"mean": [...], "std": [...]}`` of the training set.
        model_kwargs: extra builder kwargs for the backbone.
        optim: Hydra config (dict) of the optimiser, with ``_partial_: true``.
        scheduler: Hydra config (dict) of an LR scheduler factory, or None.
        init: weight initialisation, ``"default"`` (the family's own) or ``"he"`` (see ``tasks.init``).
    """

    def __init__(self, arch: str, classes: list[str], in_chans: int, input_size: list[int],
                 normalization: dict[str, list[float]], model_kwargs: dict[str, Any] | None = None,
                 optim: dict[str, Any] | None = None, scheduler: dict[str, Any] | None = None,
                 init: str = "default"):
        super().__init__()
        self.save_hyperparameters()
        self.model = apply_init(create_model(arch, num_classes=len(classes), in_chans=in_chans,
                                             **(model_kwargs or {})), init)
        n = len(classes)
        self.train_acc = MulticlassAccuracy(num_classes=n, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes=n, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes=n, average="micro")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the backbone from a classifier checkpoint, loading with ``weights_only=True``.

    Returns:
        ``(model in eval mode, hyper-parameters)``.

    Raises:
        cnnlab.checkpoint.CheckpointMissing: no such checkpoint (a ``FileNotFoundError``).
        cnnlab.checkpoint.CheckpointError: truncated or damaged, refused (pickles objects), or not a
            cnnlab classifier checkpoint / weights that do not fit it (a ``ValueError``).
    """
    ckpt = read_lightning(path, "classifier checkpoint", requires=("arch", "classes", "in_chans"))
    hp = ckpt["hyper_parameters"]
    model = create_model(hp["arch"], num_classes=len(hp["classes"]), in_chans=hp["in_chans"],
                         **(hp.get("model_kwargs") or {}))
    load_weights(model, sub_state(ckpt["state_dict"], "model."), f"{path}: its weights")
    return model.eval(), dict(hp)
