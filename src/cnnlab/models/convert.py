"""Bring outside weights into cnnlab models: torchvision-format state dicts and weight files.

Each family that torchvision also has registers ``torchvision="<tv builder name>"`` and
``tv_remap=<fn>`` in its ``default_cfg``. ``tv_remap`` maps one torchvision state-dict key to
ours (documented in the family module). This is how users bring their own pretrained files:
nothing is ever downloaded.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Mapping

import torch
import torch.nn as nn

from .registry import get_entry


def load_weight_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict from disk with ``weights_only=True`` (refuses pickled objects).

    Accepts a bare state dict, ``{"state_dict": ...}`` (Lightning) or ``{"model": ...}``.

    Raises:
        FileNotFoundError: the file does not exist (:class:`cnnlab.checkpoint.CheckpointMissing`).
        ValueError: the file is truncated or damaged, pickles arbitrary objects
            (:class:`cnnlab.checkpoint.CheckpointError`), or holds no tensors.
    """
    from ..checkpoint import read

    path = Path(path)
    obj = read(path, "weight file")
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: holds no state dict of tensors")
    return dict(obj)


def remap_torchvision_state_dict(arch: str, state_dict: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    """Rename a torchvision state dict's keys to cnnlab's for architecture ``arch``."""
    cfg = get_entry(arch).default_cfg
    remap = cfg.get("tv_remap")
    if remap is None:
        raise ValueError(f"model {arch!r} has no torchvision key mapping")
    return OrderedDict((remap(k), v) for k, v in state_dict.items())


def load_torchvision_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor] | str | Path,
                             strict: bool = True) -> nn.Module:
    """Load torchvision-format weights (a state dict or a file) into a cnnlab model, in place."""
    if isinstance(state_dict, (str, Path)):
        state_dict = load_weight_file(state_dict)
    arch = getattr(model, "arch_name", None)
    if arch is None:
        raise ValueError("model was not built by cnnlab.models.create_model (no arch_name)")
    model.load_state_dict(remap_torchvision_state_dict(arch, state_dict), strict=strict)
    return model
