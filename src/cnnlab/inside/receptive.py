"""Exact receptive fields from kernel sizes, strides, padding and dilations.

A unit at output index ``i`` (per spatial axis) of a layer sees the input pixels
``start + i·jump … start + i·jump + size − 1``. Through an op with kernel ``k``, stride ``s``,
padding ``p`` and dilation ``d`` (convolution or pooling) the field of its input composes as

    jump' = jump·s,   start' = start − p·jump,   size' = size + (k − 1)·d·jump

(the course's ``n_out = ⌊(n + 2p − f)/s⌋ + 1`` read backwards). Element-wise ops (activations,
batch norm, residual additions) keep the field; where branches meet (``x + f(x)``, ``cat``) the
field is their union. Ops that mix every position (adaptive pooling, flatten, linear) make the
field the whole input.

The arithmetic runs on the real network: :func:`trace_fields` executes one forward pass under a
``TorchFunctionMode`` that follows every tensor from the input, so any architecture works
(sequential or not, modules or functional calls) without a per-family table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode


@dataclass(frozen=True)
class Field1d:
    """Receptive field along one axis: unit ``i`` covers ``[start + i·jump, start + i·jump + size)``.

    ``n0 ≤ i < n1`` are the units that carry data: zero padding added to a tensor (dlib's
    ``add_prev`` pads the smaller branch) carries none. ``lo``/``hi`` bound the input pixels the
    data units read: a stride that does not divide the input leaves its last pixels unread.
    """

    start: float
    jump: float
    size: float
    lo: float = float("-inf")
    hi: float = float("inf")
    n0: float = 0
    n1: float = float("inf")

    def through(self, k: int, s: int, p: int, d: int = 1) -> "Field1d":
        """The field after a window op of kernel ``k``, stride ``s``, padding ``p``, dilation ``d``."""
        n0 = max(0, math.ceil((self.n0 + p - (k - 1) * d) / s))
        n1 = math.floor((self.n1 - 1 + p) / s) + 1 if math.isfinite(self.n1) else self.n1
        return Field1d(self.start - p * self.jump, self.jump * s, self.size + (k - 1) * d * self.jump,
                       self.lo, self.hi, n0, n1)

    def shifted(self, pad: int) -> "Field1d":
        """The field after ``pad`` units of zeros are put before the tensor."""
        return Field1d(self.start - pad * self.jump, self.jump, self.size, self.lo, self.hi,
                       self.n0 + pad, self.n1 + pad)

    def bounded(self, n: int) -> "Field1d":
        """This field on a tensor axis of ``n`` units: the data units and the pixels they read."""
        n0, n1 = max(self.n0, 0), min(self.n1, n)
        lo = max(self.lo, self.start + n0 * self.jump)
        hi = min(self.hi, self.start + (n1 - 1) * self.jump + self.size)
        return Field1d(self.start, self.jump, self.size, lo, hi, n0, n1)

    def window(self, i: int) -> tuple[float, float] | None:
        """``[first, end)`` input pixels of unit ``i`` (None: unit ``i`` is padding)."""
        if not self.n0 <= i < self.n1:
            return None
        first = self.start + i * self.jump
        return max(first, self.lo), min(first + self.size, self.hi)


@dataclass(frozen=True)
class Field:
    """A 2-D receptive field: one ``(rows, columns)`` term per path from the input (branches that
    meet in a sum each keep theirs); ``global_`` when every input pixel reaches every unit."""

    terms: tuple[tuple[Field1d, Field1d], ...]
    global_: bool = False

    @property
    def h(self) -> Field1d:
        return max((t[0] for t in self.terms), key=lambda f: f.size)

    @property
    def w(self) -> Field1d:
        return max((t[1] for t in self.terms), key=lambda f: f.size)

    @property
    def size(self) -> tuple[int, int]:
        """Height and width of the largest window (a unit away from the borders)."""
        return int(self.h.size), int(self.w.size)

    def box(self, i: int, j: int, clip: tuple[int, int] | None = None) -> tuple[int, int, int, int]:
        """Input window ``(top, left, bottom, right)`` (end-exclusive) of the unit at row ``i``, column ``j``.

        Args:
            i: output row.
            j: output column.
            clip: ``(H, W)`` of the input: the window is clipped to the pixels the unit reads. Without
                it, the full window (it extends into the padding at the borders).
        """
        if clip is None:
            top, left = self.h.start + i * self.h.jump, self.w.start + j * self.w.jump
            return int(top), int(left), int(top + self.h.size), int(left + self.w.size)
        rows, cols = [], []
        for h, w in self.terms:
            r, c = h.window(i), w.window(j)
            if r is not None and c is not None and r[0] < r[1] and c[0] < c[1]:
                rows.append(r)
                cols.append(c)
        if not rows:
            return 0, 0, 0, 0
        return (int(max(min(r[0] for r in rows), 0)), int(max(min(c[0] for c in cols), 0)),
                int(min(max(r[1] for r in rows), clip[0])), int(min(max(c[1] for c in cols), clip[1])))

    def map(self, fn) -> "Field":
        return Field(tuple((fn(h, 0), fn(w, 1)) for h, w in self.terms), self.global_)

    def through(self, k, s, p, d=1) -> "Field":
        k, s, p, d = (_pair(v) for v in (k, s, p, d))
        return self.map(lambda f, a: f.through(k[a], s[a], p[a], d[a]))

    def union(self, other: "Field") -> "Field":
        if self.h.jump != other.h.jump or self.w.jump != other.w.jump:
            raise ValueError(f"cannot join fields with strides {self.h.jump} and {other.h.jump}")
        terms = self.terms + tuple(t for t in other.terms if t not in self.terms)
        return Field(terms, self.global_ or other.global_)


def _full(h: int, w: int) -> Field:
    return Field(((Field1d(0, h, h, 0, h, 0, 1), Field1d(0, w, w, 0, w, 0, 1)),), True)


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return (int(v[0]), int(v[-1])) if len(v) in (1, 2) else (int(v[0]), int(v[1]))
    return int(v), int(v)


def _arg(args, kwargs, i, name, default):
    return args[i] if len(args) > i else kwargs.get(name, default)


def _ops(*names: str) -> frozenset:
    """The callables a TorchFunctionMode may see for one op (``F.x``, ``torch.x``, ``torch._C._nn.x``)."""
    found = set()
    for name in names:
        for ns in (F, torch, torch._C._nn, torch.Tensor):
            if hasattr(ns, name):
                found.add(getattr(ns, name))
    return frozenset(found)


_CONV = _ops("conv2d")
_MAXPOOL = _ops("max_pool2d", "max_pool2d_with_indices")
_AVGPOOL = _ops("avg_pool2d")
_PAD = _ops("pad")


def _window(func, args, kwargs) -> tuple | None:
    """``(k, s, p, d)`` of a convolution or pooling call, or None for other ops."""
    if func in _CONV:
        w = args[1] if len(args) > 1 else kwargs["weight"]
        pad = _arg(args, kwargs, 4, "padding", 0)
        if isinstance(pad, str):  # "same" / "valid"
            k, d = _pair(tuple(w.shape[2:])), _pair(_arg(args, kwargs, 5, "dilation", 1))
            pad = (0, 0) if pad == "valid" else tuple(d[a] * (k[a] - 1) // 2 for a in range(2))
        return (tuple(w.shape[2:]), _arg(args, kwargs, 3, "stride", 1), pad, _arg(args, kwargs, 5, "dilation", 1))
    if func in _MAXPOOL:
        k = _arg(args, kwargs, 1, "kernel_size", None)
        s = _arg(args, kwargs, 2, "stride", None) or k
        return k, s, _arg(args, kwargs, 3, "padding", 0), _arg(args, kwargs, 4, "dilation", 1)
    if func in _AVGPOOL:
        k = _arg(args, kwargs, 1, "kernel_size", None)
        s = _arg(args, kwargs, 2, "stride", None) or k
        return k, s, _arg(args, kwargs, 3, "padding", 0), 1
    return None


# Ops after which every output depends on every input position.
_SPATIAL_GLOBAL = _ops("adaptive_avg_pool2d", "adaptive_max_pool2d", "interpolate", "linear", "flatten", "view",
                       "reshape", "mean", "sum", "amax", "matmul")


class _Tracer(TorchFunctionMode):
    """Follows every tensor computed from the input and records its receptive field."""

    def __init__(self, full: Field):
        super().__init__()
        self.fields: dict[int, tuple[Field, torch.Tensor]] = {}
        self.full = full

    def field_of(self, t) -> Field | None:
        entry = self.fields.get(id(t)) if isinstance(t, torch.Tensor) else None
        return entry[0] if entry is not None and entry[1] is t else None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = [f for f in (self.field_of(a) for a in _flat(args, kwargs)) if f is not None]
        if not inputs:
            return out
        window = _window(func, args, kwargs)
        if window is not None:
            field = inputs[0].through(*window)
        elif func in _PAD:
            pad = _arg(args, kwargs, 1, "pad", ())
            field = inputs[0]
            if len(pad) >= 4:  # (left, right, top, bottom, ...): zeros before the data shift it
                field = field.map(lambda f, a: f.shifted(pad[2] if a == 0 else pad[0]))
        elif func in _SPATIAL_GLOBAL:
            field = self.full
        else:
            field = inputs[0]
            for other in inputs[1:]:
                same = other.h.jump == field.h.jump and other.w.jump == field.w.jump
                field = field.union(other) if same else self.full
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                if t.ndim == 4 and not field.global_:
                    field = field.map(lambda f, a: f.bounded(t.shape[2 + a]))
                self.fields[id(t)] = (field, t)
        return out


def _flat(args, kwargs) -> Iterable:
    for a in list(args) + list(kwargs.values()):
        if isinstance(a, (tuple, list)):
            yield from a
        else:
            yield a


def module(model: nn.Module, name: str) -> nn.Module:
    """The sub-module called ``name`` (a ``named_modules`` path such as ``features.3``).

    Raises:
        KeyError: no such layer; the message lists the layer names the network has.
    """
    modules = dict(model.named_modules())
    if name not in modules or not name:
        names = [n for n, m in modules.items() if n and not list(m.children())]
        raise KeyError(f"layer {name!r} not in {type(model).__name__}; its layers: {', '.join(names)}")
    return modules[name]


def trace_fields(model: nn.Module, layers: Sequence[str], x: torch.Tensor,
                 forward=None) -> dict[str, tuple[Field, tuple[int, ...]]]:
    """Receptive fields of the outputs of ``layers``, from one forward pass on ``x``.

    Args:
        model: the network (its weights do not matter).
        layers: sub-module names (``named_modules`` paths).
        x: an input batch of the size the fields are wanted for (``(N, C, H, W)``).
        forward: callable ``forward(x)`` to run instead of ``model(x)`` (e.g. ``forward_features``).

    Returns:
        ``{layer: (field, output shape)}``.
    """
    caught: dict[str, torch.Tensor] = {}
    hooks = [module(model, name).register_forward_hook(
        lambda _m, _i, out, name=name: caught.setdefault(name, out[0] if isinstance(out, tuple) else out))
        for name in layers]
    full = _full(x.shape[2], x.shape[3])
    x = x.detach().clone()
    tracer = _Tracer(full)
    try:
        with torch.no_grad(), tracer:
            tracer.fields[id(x)] = (Field(((Field1d(0, 1, 1, 0, x.shape[2], 0, x.shape[2]),
                                            Field1d(0, 1, 1, 0, x.shape[3], 0, x.shape[3])),)), x)
            (forward or model)(x)
    finally:
        for h in hooks:
            h.remove()
    result = {}
    for name in layers:
        if name not in caught:
            raise KeyError(f"layer {name!r} was not run by the forward pass")
        out = caught[name]
        result[name] = (tracer.field_of(out) or full, tuple(out.shape))
    return result


def gradient_box(model: nn.Module, layer: str, x: torch.Tensor, channel: int, i: int, j: int,
                 forward=None) -> tuple[int, int, int, int] | None:
    """Brute force: the bounding box of the input pixels with a non-zero gradient of one unit.

    The reference :func:`trace_fields` is tested against. Returns ``(top, left, bottom, right)``
    (end-exclusive) or None when the gradient is zero everywhere.
    """
    caught = {}
    hook = module(model, layer).register_forward_hook(
        lambda _m, _i, out: caught.setdefault("a", out[0] if isinstance(out, tuple) else out))
    x = x.detach().clone().requires_grad_(True)
    try:
        (forward or model)(x)
    finally:
        hook.remove()
    caught["a"][0, channel, i, j].backward()
    nz = (x.grad[0].abs().sum(0) > 0).nonzero()
    if not len(nz):
        return None
    return (int(nz[:, 0].min()), int(nz[:, 1].min()), int(nz[:, 0].max()) + 1, int(nz[:, 1].max()) + 1)
