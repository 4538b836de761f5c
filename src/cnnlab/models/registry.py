"""The one model registry: every architecture is registered here by name.

A duplicate name raises (as in torchvision), so two families can never silently shadow
each other. Each entry carries a ``default_cfg`` with at least ``input_size`` (C, H, W), which
the data pipeline uses to resize images when the config does not say otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch.nn as nn


@dataclass(frozen=True)
class ModelEntry:
    """A registered builder and its metadata."""

    name: str
    builder: Callable[..., nn.Module]
    default_cfg: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str | None = None, **default_cfg: Any) -> Callable:
    """Register a builder under ``name`` (defaults to the function name).

    Args:
        name: registry key; must be unique.
        **default_cfg: metadata, e.g. ``input_size=(3, 224, 224)``, ``torchvision="resnet18"``.

    Raises:
        ValueError: if the name is already registered.
    """

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        if key in _REGISTRY:
            raise ValueError(f"model {key!r} is already registered (by {_REGISTRY[key].builder.__module__})")
        _REGISTRY[key] = ModelEntry(key, fn, dict(default_cfg))
        return fn

    return wrap


def list_models() -> list[str]:
    """All registered model names, sorted."""
    return sorted(_REGISTRY)


def get_entry(name: str) -> ModelEntry:
    """Look up a registry entry, with a helpful error listing the known names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(list_models())}") from None


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model. Keyword arguments go to its builder (``num_classes``, ``in_chans``...)."""
    model = get_entry(name).builder(**kwargs)
    model.arch_name = name
    return model


def default_input_size(name: str) -> tuple[int, ...]:
    """The input size an architecture was designed for: (C, H, W) for images, (C, L) or (C, D, H, W) otherwise."""
    return tuple(get_entry(name).default_cfg.get("input_size", (3, 224, 224)))
