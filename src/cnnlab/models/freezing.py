"""The one freezing API: which parts of a network train, over the backbone contract.

**Blocks.** "The last N blocks" is defined once for every family, with no per-family code. The
module tree is flattened through plain containers (``nn.Sequential`` and its subclasses,
``ModuleList``, ``ModuleDict``) in registration order, which in every cnnlab family is forward
order. Each unit that holds weights, other than a normalisation layer, starts a block. BN,
activations, pooling and dropout join the block before them. The head (``get_classifier()``'s
parameters, or those given) is not a block: it always trains. So LeNet-5 has 4 blocks (conv1,
conv2, fc1, fc2). A ResNet has the stem, then each residual block. MobileNet v2 has 19: the stem,
the 17 bottlenecks and the last 1×1 conv. VGG has one block per CONV plus one per hidden FC layer.
A network may declare coarser blocks itself with a ``trunk_groups()`` method returning
``[(name, module), ...]`` from input to output (dlib's face ResNet: its stem and five levels).

**Freezing** a block sets ``requires_grad=False`` on its parameters and puts its modules in eval
mode, and they *stay* in eval mode: a module that mixes in :class:`KeepFrozenInEval` puts its
frozen parts back into eval mode after every ``train()``. A frozen BN layer then normalises with,
and keeps, its running statistics, and a frozen dropout is off: a frozen block is a fixed
function (which is what makes fine-tuning's cached features exact).

Used by fine-tuning (:mod:`cnnlab.tasks.finetune`), the face encoder
(:func:`cnnlab.face.training.module.set_trainable`) and dlib's network
(:meth:`cnnlab.face.models.dlib_resnet.DlibFaceResNet.set_finetune`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import torch.nn as nn

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.GroupNorm, nn.LayerNorm)
_FROZEN = "_cnnlab_frozen"  # attribute set on a module that freeze() froze


def freeze(modules: nn.Module | Iterable[nn.Module], frozen: bool = True, training: bool = True) -> None:
    """Freeze (no gradients, eval mode, kept by :class:`KeepFrozenInEval`) or unfreeze ``modules``.

    Args:
        modules: one module or several; each is frozen whole (its submodules included).
        frozen: freeze (True) or unfreeze (False).
        training: the mode an unfrozen module is put in.
    """
    for m in [modules] if isinstance(modules, nn.Module) else modules:
        for p in m.parameters():
            p.requires_grad_(not frozen)
        m.train(training and not frozen)
        for sub in m.modules():
            sub.__dict__[_FROZEN] = frozen


def frozen_to_eval(model: nn.Module) -> None:
    """Put every part of ``model`` that :func:`freeze` froze back into eval mode.

    A part whose parameters were made trainable again by hand (``requires_grad_(True)``) is left
    alone: it is no longer frozen.
    """
    for m in model.modules():
        if m.__dict__.get(_FROZEN) and not any(p.requires_grad for p in m.parameters()):
            m.training = False


class KeepFrozenInEval:
    """Mixin for an ``nn.Module`` (e.g. a LightningModule): ``train()`` leaves frozen parts in eval mode.

    Without it, ``module.train()`` (Lightning's, or a training loop's) would put a frozen
    BatchNorm back into training mode, and its running statistics would move with every batch.
    """

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:
            frozen_to_eval(self)
        return self


@dataclass
class Block:
    """One trainable unit of the trunk: a weighted layer or block and the layers that follow it."""

    name: str
    modules: list[nn.Module]

    def parameters(self) -> list[nn.Parameter]:
        return [p for m in self.modules for p in m.parameters()]

    @property
    def frozen(self) -> bool:
        return not any(p.requires_grad for p in self.parameters())

    def set_frozen(self, frozen: bool, training: bool = True) -> None:
        """Freeze (no gradients, eval mode) or unfreeze (gradients, mode ``training``)."""
        freeze(self.modules, frozen, training)


def _units(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    for name, child in module.named_children():
        if isinstance(child, _CONTAINERS):
            yield from _units(child, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", child


def trunk_blocks(model: nn.Module, head_params: Iterable[nn.Parameter] | None = None) -> list[Block]:
    """The ordered blocks of ``model`` below its head (see the module docstring).

    Args:
        model: a backbone (``get_classifier()``), or any module when ``head_params`` is given.
        head_params: the classifier's parameters, excluded from the blocks; defaults to those of
            ``model.get_classifier()``.

    Raises:
        ValueError: some parameter belongs to no block (it would silently never freeze).
    """
    head_params = list(model.get_classifier().parameters() if head_params is None else head_params)
    head = {id(p) for p in head_params}
    blocks: list[Block] = []
    if hasattr(model, "trunk_groups"):
        blocks = [Block(name, [m]) for name, m in model.trunk_groups()]
    else:
        pending: list[nn.Module] = []  # parameter-free layers before the first weighted one
        for name, unit in _units(model):
            params = list(unit.parameters())
            if params and all(id(p) in head for p in params):
                continue
            if params and not isinstance(unit, _NORMS):
                blocks.append(Block(name, pending + [unit]))
                pending = []
            elif blocks:
                blocks[-1].modules.append(unit)
            else:
                pending.append(unit)
    covered = head | {id(p) for b in blocks for p in b.parameters()}
    stray = [n for n, p in model.named_parameters() if id(p) not in covered]
    if stray:
        raise ValueError(f"parameters outside any block: {stray[:5]}; blocks need a module tree of "
                         f"containers and layers")
    return blocks


def set_trainable(blocks: Sequence[Block], n: int, training: bool = True) -> None:
    """Unfreeze the last ``n`` blocks and freeze all the others."""
    for i, block in enumerate(blocks):
        block.set_frozen(i < len(blocks) - n, training)


def train_last(model: nn.Module, n: int, head: nn.Module | None = None) -> list[str]:
    """Train ``head`` (default ``model.get_classifier()``) and the last ``n`` trunk blocks; freeze the rest.

    Returns:
        Names of the parameters left trainable.
    """
    head = model.get_classifier() if head is None else head
    set_trainable(trunk_blocks(model, head.parameters()), n)
    freeze(head, False)
    return [name for name, p in model.named_parameters() if p.requires_grad]
