"""Optimisers, learning-rate schedules and He initialisation: each against the course's formula."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn as nn
from conftest import REPO
from hydra.utils import instantiate
from omegaconf import OmegaConf

from cnnlab.tasks.init import apply_init, he_init
from cnnlab.tasks.schedules import inverse_time

OPTIMS = sorted(p.stem for p in (REPO / "conf" / "optim").glob("*.yaml"))
SCHEDULERS = sorted(p.stem for p in (REPO / "conf" / "scheduler").glob("*.yaml"))


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def lr_per_epoch(scheduler_cfg, lr0: float, epochs: int) -> list[float]:
    """Step a real optimiser and the configured scheduler once per epoch; the LR each epoch ran at."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr0)
    sched = instantiate(scheduler_cfg)(opt)
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def course_formula(name: str, cfg, epoch: int, lr0: float, max_epochs: int) -> float:
    if name == "inverse_time":
        return lr0 / (1 + cfg.decay_rate * epoch)
    if name == "exponential":
        return 0.95 ** epoch * lr0
    if name == "step":
        return lr0 * cfg.gamma ** (epoch // cfg.step_size)
    if name == "cosine":
        return cfg.eta_min + (lr0 - cfg.eta_min) * (1 + math.cos(math.pi * epoch / max_epochs)) / 2
    raise AssertionError(f"no formula for scheduler {name}")


def test_every_scheduler_has_a_formula():
    assert set(SCHEDULERS) == {"inverse_time", "exponential", "step", "cosine"}


@pytest.mark.parametrize("name", SCHEDULERS)
def test_schedule_follows_the_formula(hydra_cfg, name):
    cfg = hydra_cfg(f"scheduler={name}", "trainer.max_epochs=30")
    node = OmegaConf.create(OmegaConf.to_container(cfg.scheduler, resolve=True))
    lr0 = 0.2
    got = lr_per_epoch(node, lr0, 30)
    want = [course_formula(name, node, e, lr0, 30) for e in range(30)]
    assert got == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert got[0] == lr0 and got[-1] < lr0


def test_no_scheduler_means_a_constant_rate(hydra_cfg):
    cfg = hydra_cfg("~scheduler")
    assert cfg.get("scheduler") is None  # tasks.fit.build then configures no scheduler


def test_inverse_time_reproduces_the_lecture_table():
    # α0 = 0.2, decay_rate = 1: the lecture's epochs 1..4 give 0.1, 0.067, 0.05, 0.04.
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.2)
    sched = inverse_time(opt, decay_rate=1.0)
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[1:] == pytest.approx([0.1, 0.2 / 3, 0.05, 0.04])


def test_inverse_time_state_is_plain_and_resumes():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = inverse_time(opt, decay_rate=0.5)
    for _ in range(3):
        opt.step()
        sched.step()
    buf = io.BytesIO()
    torch.save(sched.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)  # no pickled callables in a checkpoint
    opt2 = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched2 = inverse_time(opt2, decay_rate=0.5)
    sched2.load_state_dict(state)
    opt2.step()
    sched2.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(1.0 / (1 + 0.5 * 4))


def test_inverse_time_rejects_negative_decay():
    with pytest.raises(ValueError, match="decay_rate"):
        inverse_time(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0), decay_rate=-0.1)


@pytest.mark.parametrize("name", OPTIMS)
@pytest.mark.parametrize("scheduler", [None, *SCHEDULERS])
def test_optimiser_and_scheduler_train_a_quadratic(hydra_cfg, name, scheduler):
    """Every optim × scheduler pair instantiates as the Classifier does and minimises ||w - 3||²."""
    overrides = [f"optim={name}", "optim.lr=0.05", "optim.weight_decay=0"]
    cfg = hydra_cfg(*overrides, *([f"scheduler={scheduler}"] if scheduler else []))
    optim_cfg = OmegaConf.to_container(cfg.optim, resolve=True)  # as tasks.fit.build passes it
    w = nn.Parameter(torch.zeros(4))
    opt = instantiate(optim_cfg)([w])
    sched = instantiate(OmegaConf.to_container(cfg.scheduler, resolve=True))(opt) if scheduler else None
    start = float(((w.detach() - 3) ** 2).sum())
    for _ in range(60):
        opt.zero_grad()
        loss = ((w - 3) ** 2).sum()
        loss.backward()
        opt.step()
        if sched:
            sched.step()
    assert float(((w.detach() - 3) ** 2).sum()) < 0.5 * start
    buf = io.BytesIO()
    torch.save({"opt": opt.state_dict(), "sched": sched.state_dict() if sched else None}, buf)
    buf.seek(0)
    torch.load(buf, weights_only=True)  # checkpoints of this run will load safely


@pytest.mark.parametrize("layer,fan_in", [
    (nn.Conv2d(64, 128, 3), 64 * 9),
    (nn.Conv2d(96, 96, 5, groups=96), 25),          # depthwise: fan-in is one channel's kernel
    (nn.Conv1d(32, 64, 7), 32 * 7),
    (nn.Linear(1024, 512), 1024),
])
def test_he_init_std_is_sqrt_2_over_fan_in(layer, fan_in):
    torch.manual_seed(0)
    nn.init.constant_(layer.weight, 5.0)
    he_init(layer)
    w = layer.weight.detach()
    assert abs(float(w.mean())) < 0.05 * math.sqrt(2 / fan_in)
    assert float(w.std()) == pytest.approx(math.sqrt(2 / fan_in), rel=0.05)
    assert torch.count_nonzero(layer.bias) == 0


def test_he_init_resets_batch_norm_and_keeps_the_default():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2))
    net[1].weight.data.fill_(3.0)
    net[1].bias.data.fill_(-1.0)
    before = net[0].weight.detach().clone()
    assert apply_init(net, "default") is net and torch.equal(net[0].weight, before)
    apply_init(net, "he")
    assert torch.equal(net[1].weight, torch.ones(8)) and torch.equal(net[1].bias, torch.zeros(8))
    assert not torch.equal(net[0].weight, before)
    with pytest.raises(ValueError, match="init"):
        apply_init(net, "xavier")
