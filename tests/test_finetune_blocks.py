"""Fine-tuning blocks and freezing: a requires_grad audit per strategy, gradual unfreezing, frozen BN."""

from __future__ import annotations

import functools

import lightning as L
import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

from cnnlab.models import create_model
from cnnlab.tasks.classifier import Classifier
from cnnlab.tasks.finetune import FreezeSchedule, replace_head, schedule_for, set_trainable, trunk_blocks

# name, builder kwargs, expected number of blocks, expected first and last block names.
FAMILIES = [
    ("lenet5", {}, 4, "features.0", "pre_logits.5"),
    ("resnet18", {"small_input": True}, 1 + 8, "stem.0", "layer4.1"),
    ("mobilenet_v2", {"width_mult": 0.35}, 1 + 17 + 1, "features.0.0", "features.18.0"),
    ("vgg11_bn", {}, 8 + 2, "features.0", "pre_logits.3"),
    ("googlenet", {"small_input": True}, 3 + 9, "conv1", "inception5b"),
]
IDS = [f[0] for f in FAMILIES]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@functools.cache
def _fresh(name: str, kwargs_items: tuple) -> tuple[nn.Module, list[nn.Parameter]]:
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_chans=3, **dict(kwargs_items))
    return model, replace_head(model, 3)


def built(name: str, kwargs: dict):
    """A model with a fresh 3-class head (built once per family), every parameter trainable."""
    model, head = _fresh(name, tuple(sorted(kwargs.items())))
    for p in model.parameters():
        p.requires_grad_(True)
    return model, head


def numel(params) -> int:
    return sum(p.numel() for p in params)


@pytest.mark.parametrize("name,kwargs,n_blocks,first,last", FAMILIES, ids=IDS)
def test_blocks_partition_the_trunk(name, kwargs, n_blocks, first, last):
    model, head = built(name, kwargs)
    blocks = trunk_blocks(model, head)
    assert len(blocks) == n_blocks
    assert (blocks[0].name, blocks[-1].name) == (first, last)
    ids = [id(p) for b in blocks for p in b.parameters()] + [id(p) for p in head]
    assert len(ids) == len(set(ids)), "a parameter in two blocks"
    assert set(ids) == {id(p) for p in model.parameters()}, "a parameter in no block"
    assert all(b.parameters() for b in blocks)
    # The new head is exactly what reset_classifier built: the 3-way classifier (and aux heads).
    assert model.head.out_features == 3 and model.head.weight in set(head)
    if name == "googlenet":
        assert model.aux1.fc2.weight in set(head) and model.aux2.fc2.out_features == 3


def audit(model, head, blocks) -> list[int]:
    """Trainable parameter count per block, checking that a block is wholly frozen or wholly trainable."""
    counts = []
    for b in blocks:
        n = numel(p for p in b.parameters() if p.requires_grad)
        assert n in (0, numel(b.parameters())), f"block {b.name} half frozen"
        counts.append(n)
    assert all(p.requires_grad for p in head), "the new head must always train"
    total = numel(model.parameters())
    assert numel(p for p in model.parameters() if p.requires_grad) == sum(counts) + numel(head) <= total
    return counts


@pytest.mark.parametrize("strategy,n_blocks,every,expect_trainable", [
    ("head", None, None, 0), ("partial", 2, None, 2), ("partial", 1, None, 1),
    ("full", None, None, "all"), ("gradual", 0, 2, 0), ("gradual", 1, 2, 1), ("scratch", None, None, "all"),
])
@pytest.mark.parametrize("name,kwargs", [(f[0], f[1]) for f in FAMILIES[:4]], ids=IDS[:4])
def test_each_strategy_freezes_exactly_what_it_claims(name, kwargs, strategy, n_blocks, every, expect_trainable):
    model, head = built(name, kwargs)
    blocks = trunk_blocks(model, head)
    start, _ = schedule_for(strategy, n_blocks, every, blocks)
    set_trainable(blocks, start)
    counts = audit(model, head, blocks)
    k = len(blocks) if expect_trainable == "all" else expect_trainable
    sizes = [numel(b.parameters()) for b in blocks]
    assert counts == [0] * (len(blocks) - k) + sizes[len(blocks) - k:]
    for b in blocks:  # frozen blocks are in eval mode (BN keeps its statistics), trainable ones train
        assert all(sub.training != b.frozen for unit in b.modules for sub in unit.modules())


def test_schedule_rejects_out_of_range_settings():
    model, head = built("lenet5", {})
    blocks = trunk_blocks(model, head)
    with pytest.raises(ValueError, match=r"n_blocks must be 1\.\.4.*features\.0, features\.3, pre_logits\.2"):
        schedule_for("partial", 5, None, blocks)
    with pytest.raises(ValueError, match="n_blocks must be 1..4"):
        schedule_for("partial", 0, None, blocks)
    with pytest.raises(ValueError, match="unfreeze_every"):
        schedule_for("gradual", 0, 0, blocks)
    with pytest.raises(ValueError, match="strategy must be one of"):
        schedule_for("linear_probe", None, None, blocks)


class Record(L.Callback):
    """Which blocks train during each epoch, and the weights after each epoch."""

    def __init__(self, blocks):
        self.blocks, self.trainable, self.snapshots = blocks, [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0:
            self.trainable.append([not b.frozen for b in self.blocks])

    def on_train_epoch_end(self, trainer, pl_module):
        self.snapshots.append({k: v.detach().clone() for k, v in pl_module.model.state_dict().items()})


def _module(arch: str, kwargs: dict, in_chans: int) -> Classifier:
    torch.manual_seed(0)
    return Classifier(arch=arch, classes=["a", "b", "c"], in_chans=in_chans, input_size=[8, 8],
                      normalization={"mean": [0.0] * in_chans, "std": [1.0] * in_chans}, model_kwargs=kwargs,
                      optim={"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1, "momentum": 0.9})


def _fit(module, callbacks, epochs: int, size: int, in_chans: int) -> None:
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(24, in_chans, size, size, generator=g), torch.randint(0, 3, (24,), generator=g))
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks)
    module.train()
    trainer.fit(module, DataLoader(data, batch_size=8, shuffle=True, generator=g), DataLoader(data, batch_size=24))


def test_gradual_unfreezing_unfreezes_at_the_right_epochs():
    module = _module("lenet5", {"act": "relu"}, 1)
    blocks = trunk_blocks(module.model)
    schedule = FreezeSchedule(blocks, start=0, every=2)
    set_trainable(blocks, 0)
    rec = Record(blocks)
    before = {k: v.clone() for k, v in module.model.state_dict().items()}
    _fit(module, [schedule, rec], epochs=6, size=32, in_chans=1)
    # epochs 0-1: head only; 2-3: + fc2; 4-5: + fc1; conv1 and conv2 never.
    assert [sum(t) for t in rec.trainable] == [0, 0, 1, 1, 2, 2]
    assert rec.trainable[4] == [False, False, True, True]
    fc2, fc1 = "pre_logits.5.weight", "pre_logits.2.weight"
    assert torch.equal(rec.snapshots[1][fc2], before[fc2]) and not torch.equal(rec.snapshots[2][fc2], before[fc2])
    assert torch.equal(rec.snapshots[3][fc1], before[fc1]) and not torch.equal(rec.snapshots[4][fc1], before[fc1])
    for key in ("features.0.weight", "features.3.weight"):
        assert torch.equal(module.model.state_dict()[key], before[key])
    assert not torch.equal(module.model.head.weight, before["head.weight"])


def test_frozen_blocks_keep_weights_and_batch_norm_statistics():
    module = _module("resnet18", {"small_input": True}, 3)
    blocks = trunk_blocks(module.model)
    set_trainable(blocks, 1)
    before = {k: v.clone() for k, v in module.model.state_dict().items()}
    _fit(module, [FreezeSchedule(blocks, start=1)], epochs=2, size=8, in_chans=3)
    after = module.model.state_dict()
    changed = {k.removesuffix(".running_mean") for k in after
               if k.endswith("running_mean") and not torch.equal(after[k], before[k])}
    assert changed and all(k.startswith("layer4.1.") for k in changed), "only the trainable block's BN may update"
    frozen_keys = [k for k in after if not k.startswith(("layer4.1.", "head."))]
    assert all(torch.equal(after[k], before[k]) for k in frozen_keys)
    assert not torch.equal(after["layer4.1.conv2.weight"], before["layer4.1.conv2.weight"])
