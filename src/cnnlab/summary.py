"""Per-layer cost table: the course's "Activation shape | Activation size | # parameters" table.

One forward pass of a single example (batch size 1, eval mode, no grad) with forward hooks on
every leaf module gives one row per leaf-module call, in execution order, preceded by an
``input`` row (as in the course's table).

Counting conventions:

- Shapes and sizes are per example, without the batch dimension, in PyTorch order
  (C×H×W; C×L for 1-D nets; C×D×H×W for 3-D nets).
- ``activation_size`` is the number of values the layer outputs.
- ``params`` counts each parameter tensor once, at the first call that uses it (shared
  modules and tied weights show 0 on later calls).
- ``macs`` (multiply-adds, = the course's "number of multiplications") counts only the
  multiplications by weight values, bias additions excluded:

  - ConvNd: ``output values × (in_channels / groups) × kernel volume``. This gives the course's
    28·28·32 × 5·5·192 for Inception's 5×5 branch and 4·4·3 × 3·3 for a depthwise convolution.
  - ConvTransposeNd: ``input values × (out_channels / groups) × kernel volume``.
  - Linear: ``output values × in_features``.
  - Everything else (pooling, activations, normalisation, dropout, flatten) counts 0: the course
    counts no multiplications for them, and they are cheap next to convolutions.

Parameters of modules that never run in the traced pass (say, auxiliary heads used only in
training) or that sit directly on container modules are reported as ``unlisted_params``, so that
``sum(row.params) + unlisted_params == total_params`` always holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn as nn

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_TRANSPOSES = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)

Shape = tuple[int, ...]


@dataclass(frozen=True)
class LayerRow:
    """One leaf-module call.

    Attributes:
        name: dotted module path (``"input"`` for the input row).
        kind: the module's class name.
        output_shape: per-example shape; a tuple of shapes if the module returns several tensors.
        activation_size: number of values output per example.
        input_size: number of values the call received per example.
        params: parameter values first used by this call.
        macs: multiply-adds per example (see the module docstring).
    """

    name: str
    kind: str
    output_shape: Shape | tuple[Shape, ...]
    activation_size: int
    input_size: int
    params: int
    macs: int

    @property
    def is_trivial(self) -> bool:
        """True for layers that learn nothing, compute no multiply-adds and keep the size
        (activations, dropout, flatten, identity): the course's table leaves them out."""
        return self.params == 0 and self.macs == 0 and self.activation_size == self.input_size


@dataclass
class ModelSummary:
    """Rows of one traced forward pass plus totals.

    Attributes:
        input_shape: per-example input shape used for the trace.
        rows: the input row, then one row per leaf-module call in execution order.
        total_params: every distinct parameter value of the model.
        trainable_params: those with ``requires_grad``.
        unlisted_params: ``total_params`` minus the rows' parameters (see the module docstring).
    """

    input_shape: Shape
    rows: list[LayerRow] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    unlisted_params: int = 0

    @property
    def total_macs(self) -> int:
        return sum(r.macs for r in self.rows)

    def layer_rows(self, compact: bool = False) -> list[LayerRow]:
        """The rows, with trivial layers (see ``LayerRow.is_trivial``) dropped if ``compact``;
        the input row is always kept."""
        if not compact:
            return list(self.rows)
        return self.rows[:1] + [r for r in self.rows[1:] if not r.is_trivial]


def parse_input_shape(text: str) -> Shape:
    """Parse ``"3x32x32"`` (also ``×``, ``*`` or ``,`` as separators) into ``(3, 32, 32)``.

    Raises:
        ValueError: not 2 to 4 positive integers.
    """
    parts = text.lower().replace("×", "x").replace("*", "x").replace(",", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"input shape must look like CxHxW, got {text!r}") from None
    if not 2 <= len(shape) <= 4 or min(shape) < 1:
        raise ValueError(f"input shape must be 2-4 positive integers (CxL, CxHxW, CxDxHxW), got {text!r}")
    return shape


def layer_macs(module: nn.Module, inputs: Sequence[torch.Tensor], output: torch.Tensor) -> int:
    """Multiply-adds per example of one call of ``module`` (0 for layers without weights)."""
    if isinstance(module, _CONVS):
        per_out = (module.in_channels // module.groups) * math.prod(module.kernel_size)
        return output[0].numel() * per_out
    if isinstance(module, _CONV_TRANSPOSES):
        per_in = (module.out_channels // module.groups) * math.prod(module.kernel_size)
        return inputs[0][0].numel() * per_in
    if isinstance(module, nn.Linear):
        return output[0].numel() * module.in_features
    return 0


def _tensors(obj) -> list[torch.Tensor]:
    """All tensors in a (possibly nested) module output."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)):
        return [t for item in obj for t in _tensors(item)]
    return []


def _per_example_shape(tensors: list[torch.Tensor]) -> Shape | tuple[Shape, ...]:
    shapes = tuple(tuple(t.shape[1:]) for t in tensors)
    return shapes[0] if len(shapes) == 1 else shapes


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for p in model.parameters():
        return p.device, p.dtype
    return torch.device("cpu"), torch.float32


def summarize(model: nn.Module, input_shape: Sequence[int]) -> ModelSummary:
    """Trace one example through ``model`` and tabulate every leaf-module call.

    Args:
        model: any module; it is run in eval mode (BatchNorm would reject a batch of one in
            training mode) and its training flag is restored afterwards.
        input_shape: per-example shape, e.g. ``(3, 32, 32)``.

    Returns:
        The summary; see the module docstring for what each count means.
    """
    input_shape = tuple(int(s) for s in input_shape)
    names = {}
    for name, mod in model.named_modules():
        if not any(True for _ in mod.children()):
            names.setdefault(mod, name or type(mod).__name__)
    summary = ModelSummary(input_shape=input_shape)
    summary.rows.append(LayerRow("input", "Input", input_shape, math.prod(input_shape), math.prod(input_shape), 0, 0))
    seen: set[int] = set()

    def hook(module: nn.Module, inputs, output) -> None:
        params = 0
        for p in module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                params += p.numel()
        outs, ins = _tensors(output), _tensors(inputs)
        summary.rows.append(LayerRow(
            name=names[module], kind=type(module).__name__, output_shape=_per_example_shape(outs),
            activation_size=sum(t[0].numel() for t in outs), input_size=sum(t[0].numel() for t in ins),
            params=params, macs=layer_macs(module, ins, outs[0]) if outs else 0))

    handles = [m.register_forward_hook(hook) for m in names]
    was_training = model.training
    device, dtype = _model_device_dtype(model)
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device=device, dtype=dtype))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    unique = {id(p): p for p in model.parameters()}.values()
    summary.total_params = sum(p.numel() for p in unique)
    summary.trainable_params = sum(p.numel() for p in unique if p.requires_grad)
    summary.unlisted_params = summary.total_params - sum(r.params for r in summary.rows)
    return summary


def _fmt_shape(shape: Shape | tuple[Shape, ...]) -> str:
    if shape and isinstance(shape[0], tuple):
        return ", ".join(_fmt_shape(s) for s in shape)
    return "×".join(str(s) for s in shape) or "scalar"


def format_summary(summary: ModelSummary, compact: bool = True, title: str | None = None) -> str:
    """Render the summary as an aligned text table followed by the totals.

    Args:
        summary: from ``summarize``.
        compact: leave out trivial layers (activations, dropout, flatten), as the course's table does.
        title: optional first line (e.g. the model name).
    """
    header = ("Layer", "Type", "Activation shape", "Activation size", "# parameters", "Multiply-adds")
    body = [(r.name, r.kind, _fmt_shape(r.output_shape), f"{r.activation_size:,}", f"{r.params:,}", f"{r.macs:,}")
            for r in summary.layer_rows(compact)]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(cells) -> str:
        # Text columns left-aligned, numeric columns right-aligned.
        return " | ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    rule = "-+-".join("-" * w for w in widths)
    out = ([title] if title else []) + [line(header), rule] + [line(b) for b in body] + [rule]
    out.append(f"Input shape: {_fmt_shape(summary.input_shape)} (per example, C first)")
    out.append(f"Total params: {summary.total_params:,} (trainable {summary.trainable_params:,})")
    if summary.unlisted_params:
        out.append(f"  of which {summary.unlisted_params:,} in modules not run by this pass or held by containers")
    out.append(f"Total multiply-adds per example: {summary.total_macs:,}")
    return "\n".join(out)
