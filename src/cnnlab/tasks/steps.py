"""The step plumbing every task's LightningModule shares, so that a module writes only its ``_step``."""

from __future__ import annotations

from .schedules import configure_optimizers


class StepsByStage:
    """Mixin for a LightningModule with ``_step(batch, stage)``: ``training_step`` and
    ``validation_step`` call it with ``"train"`` / ``"val"``, and ``configure_optimizers`` builds
    the ``optim`` (and, when saved, ``scheduler``) hyper-parameters over every parameter."""

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")

    def configure_optimizers(self):
        return configure_optimizers(self.parameters(), self.hparams.optim, self.hparams.get("scheduler"))
