"""The repository's Hydra configuration for code that is not a stage (CLI, library, benchmarks).

Stages get their config from Hydra's entry point (:func:`cnnlab.stages._app.stage`); everything
else composes the same files here, so no caller reads a group file by hand (reading one alone
misses its interpolations into other groups). It sits low in the layering (docs/ARCHITECTURE.md):
any package may import it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


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


def to_dict(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain Python types (for MLflow params and checkpoints)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
