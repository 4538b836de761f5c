"""The ``experiment/`` config group (lightning-hydra-template's): every experiment composes, and one
trains end to end with ``debug=tiny``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import REPO, run, run_env, stage
from cnnlab.models import create_model
from cnnlab.models.freezing import trunk_blocks
from cnnlab.tasks.finetune import replace_head, schedule_for
from cnnlab.tasks.fit import model_kwargs

EXPERIMENTS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))


def test_there_are_real_experiments():
    assert {"resnet18_digits", "mobilenet_v2_finetune"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_and_builds(name, hydra_cfg):
    path = REPO / "conf" / "experiment" / f"{name}.yaml"
    assert path.read_text().splitlines()[0] == "# @package _global_", f"{path}: must start with # @package _global_"
    cfg = hydra_cfg(f"experiment={name}")
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    base = hydra_cfg()
    assert cfg != base, f"experiment={name} changes nothing"
    channels = 1  # both experiments are on the digits
    model = create_model(cfg.model.name, num_classes=5, in_chans=channels, **model_kwargs(cfg))
    assert model(torch.zeros(2, channels, 32, 32)).shape == (2, 5)
    if cfg.get("finetune"):  # the strategy's settings fit the network's blocks
        blocks = trunk_blocks(model, replace_head(model, 5))
        ft = cfg.finetune
        schedule_for(ft.strategy, ft.get("n_blocks"), ft.get("unfreeze_every"), blocks)
    tiny = hydra_cfg(f"experiment={name}", "debug=tiny")
    assert tiny.trainer.max_epochs == 2 and tiny.data.limit_per_class == 12, "debug=tiny must win over the experiment"


def test_resnet18_digits_trains_end_to_end(tiny_digits, tmp_path):
    run_dir = tmp_path / "run"
    run(stage("train", "experiment=resnet18_digits", "debug=tiny", f"paths.prepared={tiny_digits}",
              f"paths.run={run_dir}", "num_workers=0"), REPO, run_env(tmp_path))
    hp = torch.load(run_dir / "best.ckpt", weights_only=True, map_location="cpu")["hyper_parameters"]
    assert hp["arch"] == "resnet18" and hp["model_kwargs"] == {"small_input": True} and hp["input_size"] == [32, 32]
    assert (run_dir / "metrics.json").is_file()
