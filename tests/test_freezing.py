"""The one freezing API (cnnlab.models.freezing): frozen parts stay in eval mode, so a frozen BN's
running statistics do not move while the rest trains: fine-tuning, the face encoder, dlib's network."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from cnnlab.face.models.dlib_resnet import DlibFaceResNet
from cnnlab.face.training.module import FaceEncoderModule
from cnnlab.models.freezing import freeze, set_trainable, trunk_blocks
from cnnlab.tasks.classifier import Classifier
from cnnlab.tasks.finetune import replace_head

NORM = {"mean": [0.5] * 3, "std": [0.25] * 3}
OPTIM = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def bn_stats(module: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": v.clone() for n, m in module.named_modules() if isinstance(m, nn.BatchNorm2d)
            for k, v in (("running_mean", m.running_mean), ("running_var", m.running_var))}


def train_step(module, batch) -> None:
    """One optimiser step the way a training loop takes it: ``train()``, forward, backward, step."""
    module.train()
    opt = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=0.1)
    loss = module.training_step(batch, 0)
    loss.backward()
    opt.step()


def faces_batch():
    torch.manual_seed(0)
    return torch.randn(8, 3, 32, 32), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])


@pytest.mark.filterwarnings("ignore:.*self.log.*")
def test_face_encoder_head_strategy_keeps_the_trunk_bn_statistics():
    module = FaceEncoderModule("resnet18", 3, [32, 32], NORM, model_kwargs={"small_input": True},
                               embedding_dim=16, optim=OPTIM, strategy="head")
    before, proj = bn_stats(module.embedder.backbone), module.embedder.proj.weight.clone()
    assert before, "the test needs a backbone with BatchNorm"
    train_step(module, faces_batch())
    after = bn_stats(module.embedder.backbone)
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert not moved, f"frozen BN statistics moved: {moved[:3]}"
    assert not any(m.training for m in module.embedder.backbone.modules())
    assert module.embedder.proj.training and not torch.equal(proj, module.embedder.proj.weight), "the head trained"


@pytest.mark.filterwarnings("ignore:.*self.log.*")
def test_face_encoder_partial_strategy_moves_only_the_unfrozen_blocks_statistics():
    module = FaceEncoderModule("resnet18", 3, [32, 32], NORM, model_kwargs={"small_input": True},
                               embedding_dim=16, optim=OPTIM, strategy="partial", n_blocks=1)
    before = bn_stats(module.embedder.backbone)
    train_step(module, faces_batch())
    after = bn_stats(module.embedder.backbone)
    moved = {k.split(".bn")[0].split(".downsample")[0] for k in before if not torch.equal(before[k], after[k])}
    assert moved == {"layer4.1"}, moved  # the last residual block is the one block that trains


@pytest.mark.filterwarnings("ignore:.*self.log.*")
def test_finetuned_classifier_keeps_frozen_bn_statistics_through_train():
    torch.manual_seed(0)
    module = Classifier("resnet18", ["a", "b", "c"], 3, [32, 32], NORM, model_kwargs={"small_input": True},
                        optim=OPTIM)
    head = replace_head(module.model, 3)
    blocks = trunk_blocks(module.model, head)
    set_trainable(blocks, 1)
    frozen = nn.ModuleList([m for b in blocks[:-1] for m in b.modules])
    before = bn_stats(frozen)
    train_step(module, (torch.randn(6, 3, 32, 32), torch.tensor([0, 1, 2, 0, 1, 2])))
    assert all(torch.equal(v, bn_stats(frozen)[k]) for k, v in before.items())
    assert all(m.training for m in blocks[-1].modules)


def test_unfreezing_and_hand_made_trainable_parts_train_again():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    freeze(net)
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    freeze(net, False)
    assert net[1].training and all(p.requires_grad for p in net.parameters())


def test_dlib_network_freezes_by_level_through_the_same_api():
    net = DlibFaceResNet(input_size=None)
    names = net.set_finetune("partial", n_levels=1)
    assert {n.split(".")[0] for n in names} == {"level0", "fc"}
    assert not net.level1.training and net.level0.training
    assert [b.name for b in trunk_blocks(net)] == ["stem", "level4", "level3", "level2", "level1", "level0"]
    with pytest.raises(ValueError, match=r"n_levels must be 1\.\.6"):
        net.set_finetune("partial", n_levels=7)
