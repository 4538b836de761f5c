"""Check training configs before training starts, so that a bad value is named by its key.

``optim.lr=abc`` would otherwise fail inside torch's Adam with a ``TypeError`` about ``<=``, and
``trainer.max_epochs=abc`` inside Lightning with a bare ``AssertionError``. Here every Hydra node
whose ``_target_`` is an optimiser, an LR scheduler, the Lightning Trainer or a cnnlab schedule is
checked against the annotations of its callable, and optimisers and schedulers are built once on
a dummy parameter so that torch's own range checks (``Invalid learning rate: -1``) fire early,
with the key prepended.
"""

from __future__ import annotations

import collections.abc as cabc
import inspect
import numbers
import types
import typing
from typing import Any, Mapping

import torch
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf

_CHECKED = ("torch.optim.", "lightning.", "cnnlab.tasks.")
_SEED_MAX = 2**32 - 1


def _hints(fn: Any) -> tuple[inspect.Signature, dict[str, Any]]:
    init = fn.__init__ if inspect.isclass(fn) else fn
    sig = inspect.signature(init)
    try:
        hints = typing.get_type_hints(init)
    except Exception:  # unresolvable forward references: check what can be checked, nothing else
        hints = {}
    return sig, hints


def _matches(value: Any, hint: Any) -> bool:
    """Whether a config value (plain Python types) can be passed where ``hint`` is annotated."""
    if hint is Any or isinstance(hint, (typing.TypeVar, typing.ForwardRef, str)):
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin in (list, tuple, cabc.Sequence, cabc.Iterable):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args))
        inner = args[0] if args else Any
        return all(_matches(v, inner) for v in value)
    if origin in (dict, cabc.Mapping) or hint in (dict, cabc.Mapping):
        return isinstance(value, dict)
    if isinstance(value, dict) and "_target_" in value:
        return True  # Hydra builds it
    if inspect.isclass(hint):
        if hint in (numbers.Number, numbers.Real):
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        return isinstance(value, hint) or (hint is str and isinstance(value, str))
    return True  # Callable, Protocols and other constructs a config value cannot be checked against


def _describe(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def check_call(node: Mapping[str, Any], key: str) -> None:
    """Check a ``_target_`` node's kwargs against its callable's signature.

    Args:
        node: the resolved node (plain containers), with ``_target_``.
        key: its config key, for messages (e.g. ``"optim"``, ``"face.optim"``, ``"trainer"``).

    Raises:
        ValueError: an unknown argument, or a value of the wrong type, named ``<key>.<arg>``.
    """
    target = node["_target_"]
    try:
        fn = get_object(target)
    except Exception as err:
        raise ValueError(f"{key}._target_: cannot import {target!r} ({err})") from None
    sig, hints = _hints(fn)
    var_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    for name, value in node.items():
        if name.startswith("_"):
            continue
        if name not in sig.parameters:
            if var_kw:
                continue
            raise ValueError(f"{key}.{name}: {target} takes no argument {name!r}")
        hint = hints.get(name)
        if hint is not None and not _matches(value, hint):
            raise ValueError(f"{key}.{name}={value!r}: {target} expects {_describe(hint)}")


def _dummy_build(node: Mapping[str, Any], key: str) -> None:
    """Build an optimiser (or schedule) node once on a dummy parameter, naming ``key`` if torch refuses it."""
    fn = get_object(node["_target_"])
    param = torch.nn.Parameter(torch.zeros(1))
    try:
        if inspect.isclass(fn) and issubclass(fn, torch.optim.Optimizer):
            if node.get("_partial_"):
                instantiate(dict(node))([param])
            else:
                instantiate(dict(node), params=[param])
        elif node.get("_partial_"):
            instantiate(dict(node))(torch.optim.SGD([param], lr=0.1))
    except (TypeError, ValueError, AssertionError, RuntimeError) as err:
        raise ValueError(f"{key}: {err}") from None


def _nodes(cfg: Any, prefix: str = ""):
    if isinstance(cfg, dict):
        target = cfg.get("_target_")
        if isinstance(target, str) and target.startswith(_CHECKED):
            yield prefix.rstrip("."), cfg
        for k, v in cfg.items():
            yield from _nodes(v, f"{prefix}{k}.")


def check_seed(cfg: DictConfig | Mapping[str, Any]) -> None:
    """``seed`` must be an integer in [0, 2³² − 1] (what numpy accepts).

    Raises:
        ValueError: naming ``seed`` and the value.
    """
    if "seed" not in cfg:
        return
    seed = cfg["seed"]
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= _SEED_MAX:
        raise ValueError(f"seed={seed!r}: must be an integer from 0 to {_SEED_MAX}")


def check_training_config(cfg: DictConfig) -> None:
    """Check ``seed`` and every optimiser, scheduler and Trainer node of ``cfg`` (see the module docstring).

    Raises:
        ValueError: the first bad value, named by its key.
    """
    check_seed(cfg)
    conf = OmegaConf.to_container(cfg, resolve=True)
    # the Trainer first: other nodes interpolate its values (scheduler.T_max: ${trainer.max_epochs})
    for key, node in sorted(_nodes(conf), key=lambda kn: kn[0] != "trainer"):
        if str(node.get("_target_", "")).endswith(".Trainer"):
            node = {k: v for k, v in node.items() if k != "speed"}  # cnnlab's own block (tasks.fit.trainer_config)
        check_call(node, key)
        if key.split(".")[-1] in ("optim", "scheduler"):
            _dummy_build(node, key)
