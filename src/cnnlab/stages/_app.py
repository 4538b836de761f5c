"""What every stage script shares: Hydra entry point, config → dict, tracker construction."""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

import hydra
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("cnnlab")


def conf_dir() -> Path:
    """The Hydra config folder: ``$CNNLAB_CONF`` or ``./conf`` (the repository's)."""
    path = Path(os.environ.get("CNNLAB_CONF", "conf")).resolve()
    if not (path / "config.yaml").is_file():
        sys.exit(f"cnnlab: no Hydra config at {path}/config.yaml; run from the repository root "
                 f"or set CNNLAB_CONF")
    return path


def compose(*overrides: str, conf: Path | None = None, config_name: str = "config") -> DictConfig:
    """The repository's Hydra config (``conf/config.yaml`` with its defaults) and ``overrides``.

    What a stage would see, for code that is not a stage (the ``cnnlab`` CLI, benchmarks).

    Args:
        *overrides: Hydra override strings, e.g. ``"encoder=dlib_resnet"``.
        conf: the config folder; default :func:`conf_dir`.
        config_name: the entry-point config (``config`` or a stage family's own, e.g. ``detect``).
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(conf or conf_dir()), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


def stage(fn: Callable[[DictConfig], Any] | None = None, *, config_name: str = "config") -> Any:
    """Wrap a stage function as a Hydra app reading ``conf/<config_name>.yaml``.

    Use as ``@stage`` (the shared ``conf/config.yaml``) or ``@stage(config_name="detect")`` for a
    stage family with its own entry-point config that composes only what it uses.

    Known bad-input errors (missing files, bad data) exit with status 1 and a one-line message
    naming the file or key, instead of a traceback.
    """

    if fn is None:
        return functools.partial(stage, config_name=config_name)

    @functools.wraps(fn)
    def main() -> None:
        @hydra.main(config_path=str(conf_dir()), config_name=config_name, version_base="1.3")
        def _run(cfg: DictConfig) -> None:
            from ..data.images import DataError

            from ..workflow_guard import watch_parent

            watch_parent()      # under Snakemake: stop (SIGTERM) if the Snakemake run dies
            _sweep_paths(cfg)
            if cfg.get("threads"):
                import torch

                torch.set_num_threads(cfg.threads)

            try:
                fn(cfg)
            except (DataError, FileNotFoundError, ValueError, KeyError) as err:
                log.error("stage %s failed: %s", fn.__module__.rsplit(".", 1)[-1], err)
                sys.exit(f"error: {err}")

        _run()

    return main


def _sweep_paths(cfg: DictConfig) -> None:
    """In a multirun, give each job its own run folder: ``<paths.run>/<override_dirname>``."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    if hc.mode == RunMode.MULTIRUN and hc.job.override_dirname and "run" in cfg.paths:
        OmegaConf.update(cfg, "paths.run", f"{cfg.paths.run}/{hc.job.override_dirname}")


def to_dict(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain Python types (for MLflow params and checkpoints)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def tracker(stage_name: str, cfg: DictConfig, **tags: Any):
    """An (unstarted) MLflow tracker for this stage, tagged with data set and model."""
    from ..track import Tracker

    from ._sweep import ENV

    base = {"dataset": cfg.data.name} if "data" in cfg else {}
    return Tracker(stage_name, to_dict(cfg), tags={**base, **tags}, experiment=cfg.mlflow.experiment,
                   uri=cfg.mlflow.tracking_uri, parent_run_id=os.environ.get(ENV))
