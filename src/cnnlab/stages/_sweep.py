"""Hydra multirun sweeps as one MLflow parent run with a child run per job.

``python -m cnnlab.stages.train -m optim.lr=0.001,0.01`` starts the parent run before the first
job (this Hydra callback) and hands its id to the jobs through ``CNNLAB_PARENT_RUN_ID``; each
job's tracker nests under it (``mlflow.parentRunId``). Jobs write to
``<paths.run>/<override_dirname>`` so that they never overwrite each other.
"""

from __future__ import annotations

import os
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

ENV = "CNNLAB_PARENT_RUN_ID"


class MlflowSweepParent(Callback):
    """Open the sweep's parent run at multirun start, close it at multirun end."""

    def __init__(self) -> None:
        self.tracker = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from ..track import Tracker

        overrides = list(OmegaConf.select(config, "hydra.overrides.task") or [])
        self.tracker = Tracker("sweep", {"sweep": {"overrides": " ".join(overrides)}},
                               tags={"dataset": config.data.name, "model": config.model.name},
                               experiment=config.mlflow.experiment, uri=config.mlflow.tracking_uri,
                               run_name=f"sweep-{config.data.name}-{config.model.name}").start()
        os.environ[ENV] = self.tracker.run_id

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.tracker is not None:
            self.tracker.end()
            os.environ.pop(ENV, None)
