"""Finding a prepared data set by name: later stages need only ``data.name=NAME``.

``prepare`` stores the data config it used as dataset.json's ``"data"`` (source, root, channels,
mirror, split, ...). When a stage is given ``data.name=NAME`` on its command line and
``paths.prepared`` (``data/prepared/NAME``) holds such a record, the stage's ``data`` block
becomes that record, so ``data.root`` and the rest need not be repeated. Other ``data.*``
overrides on the same command line still win (``data.name=NAME data.image_size=64``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig, OmegaConf

from .images import DataError

log = logging.getLogger("cnnlab")


def recorded_data(prepared: str | Path) -> dict | None:
    """The data config recorded in ``<prepared>/dataset.json``, or None (no file, no record).

    Raises:
        DataError: dataset.json exists but is not valid JSON.
    """
    meta_file = Path(prepared) / "dataset.json"
    if not meta_file.is_file():
        return None
    try:
        meta = json.loads(meta_file.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{meta_file}: not valid JSON ({err}); prepare the data set again") from err
    record = meta.get("data") if isinstance(meta, dict) else None
    return record if isinstance(record, dict) else None


def override_keys(overrides: Sequence[str]) -> list[str]:
    """The keys of Hydra command-line overrides (``+a.b=1`` → ``a.b``; ``data=folder`` → ``data``)."""
    keys = []
    for item in overrides:
        key = item.split("=", 1)[0].lstrip("+~")
        keys.append(key.split("@", 1)[0])
    return keys


def use_recorded_data(cfg: DictConfig, overrides: Sequence[str]) -> bool:
    """Replace ``cfg.data`` by the recorded data config when ``data.name`` is on the command line.

    Args:
        cfg: the composed stage config (changed in place).
        overrides: the command line's Hydra overrides (``HydraConfig.get().overrides.task``).

    Returns:
        Whether the record was used.
    """
    keys = override_keys(overrides)
    if "data.name" not in keys:
        return False
    prepared = OmegaConf.select(cfg, "paths.prepared")
    record = recorded_data(prepared) if prepared else None
    if record is None:
        return False
    data = OmegaConf.create(record)
    for key in (k for k in keys if k.startswith("data.") and k != "data.name"):
        OmegaConf.update(data, key.removeprefix("data."), OmegaConf.select(cfg, key), force_add=True)
    data.name = cfg.data.name
    cfg.data = data
    log.info("data.name=%s: data config recorded by prepare in %s/dataset.json (source %s%s)", data.name,
             cfg.paths.prepared, data.get("source"), f", root {data.root}" if data.get("root") else "")
    return True
