"""Where fine-tuning starts: a cnnlab classifier checkpoint or a torchvision weight file, checked against the config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.nn as nn
from omegaconf import DictConfig

from ...checkpoint import CheckpointMismatch, check_state_dict, read
from ...io import file_sha256
from ...models import create_model
from ...models.convert import load_weight_file, remap_torchvision_state_dict
from ...models.registry import get_entry
from ..classifier import load_checkpoint
from ..fit import input_hw, model_kwargs
from ..init import apply_init

# torchvision's ImageNet weights expect inputs normalised with these (their transforms' defaults).
IMAGENET_NORMALIZATION = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


@dataclass
class Source:
    """A network to start from, with its source head still on, and what feeding it requires."""

    model: nn.Module
    arch: str
    model_kwargs: dict[str, Any]
    in_chans: int
    input_size: list[int]
    normalization: dict[str, list[float]] | None  # None: the target data's own statistics
    path: str | None = None
    sha256: str | None = None


def _read_safely(path: Path) -> Any:
    return read(path, "finetune.source")


def _from_checkpoint(path: Path, hp: dict, arch: str, kwargs: dict, channels: int) -> Source:
    if hp["arch"] != arch:
        raise ValueError(f"{path}: the checkpoint is a {hp['arch']}, but model={arch}; "
                         f"fine-tune with model={hp['arch']}")
    if (hp.get("model_kwargs") or {}) != kwargs:
        raise ValueError(f"{path}: the checkpoint's {arch} was built with {hp.get('model_kwargs')}, the "
                         f"configured one with {kwargs}; set the model.* keys to match")
    if hp["in_chans"] != channels:
        raise ValueError(f"{path}: the checkpoint takes {hp['in_chans']}-channel images but the target data "
                         f"has {channels} channel(s); prepare it with data.channels={hp['in_chans']}")
    try:
        model, hp = load_checkpoint(path)
    except (RuntimeError, CheckpointMismatch) as err:  # weights of another shape than the metadata says
        raise ValueError(f"{path}: its weights do not fit its own metadata ({arch}, {len(hp['classes'])} classes "
                         f"{hp['classes']}, {hp['in_chans']} input channels): {str(err).splitlines()[0]}") from err
    return Source(model, arch, kwargs, hp["in_chans"], list(hp["input_size"]), dict(hp["normalization"]),
                  str(path), file_sha256(path))


def _from_torchvision(path: Path, arch: str, kwargs: dict, channels: int, input_size: list[int]) -> Source:
    tv = get_entry(arch).default_cfg.get("torchvision")
    if tv is None:
        raise ValueError(f"{path}: not a cnnlab checkpoint, and model={arch} has no torchvision counterpart "
                         f"to read a weight file for")
    state = remap_torchvision_state_dict(arch, load_weight_file(path))
    if "head.weight" not in state:
        raise ValueError(f"{path}: no classifier weights after renaming torchvision {tv} keys; is it a torchvision "
                         f"{tv} state dict? First keys: {list(state)[:3]}")
    model = create_model(arch, num_classes=state["head.weight"].shape[0], in_chans=channels, **kwargs)
    check_state_dict(model, state, f"{path} (as torchvision {tv})")
    model.load_state_dict(state)
    return Source(model.eval(), arch, kwargs, channels, list(input_size), dict(IMAGENET_NORMALIZATION),
                  str(path), file_sha256(path))


def load_source(cfg: DictConfig, channels: int, num_classes: int) -> Source:
    """The configured starting network (``finetune.source``), or a fresh one for ``scratch``.

    Raises:
        FileNotFoundError: no such source file.
        ValueError: the file pickles objects, or its architecture, kwargs or input channels do
            not fit the configured model and the target data.
    """
    arch, kwargs = cfg.model.name, model_kwargs(cfg)
    if cfg.finetune.strategy == "scratch":
        model = apply_init(create_model(arch, num_classes=num_classes, in_chans=channels, **kwargs),
                           cfg.get("init", "default"))
        return Source(model, arch, kwargs, channels, list(input_hw(cfg)), None)
    path = Path(cfg.finetune.source)
    obj = _read_safely(path)
    hp = obj.get("hyper_parameters") if isinstance(obj, dict) else None
    if isinstance(hp, dict) and "arch" in hp and "state_dict" in obj:
        return _from_checkpoint(path, hp, arch, kwargs, channels)
    return _from_torchvision(path, arch, kwargs, channels, list(input_hw(cfg)))
