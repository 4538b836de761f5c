"""Every option of every config group composes, and the instantiable ones instantiate."""

from __future__ import annotations

import pytest
import torch
import yaml
from conftest import REPO
from hydra.utils import instantiate
from omegaconf import OmegaConf

GROUPS = sorted(p.name for p in (REPO / "conf").iterdir() if p.is_dir())
FACE_GROUPS = {"face", "encoder"}   # composed by conf/faces.yaml only
OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted((REPO / "conf" / g).glob("*.yaml"))]
# Groups only a stage family's entry config uses (conf/segment.yaml's segmenter) are added with "+".
_DEFAULTS = {k for d in yaml.safe_load((REPO / "conf" / "config.yaml").read_text())["defaults"]
             if isinstance(d, dict) for k in d}
_FACE_DEFAULTS = {k for d in yaml.safe_load((REPO / "conf" / "faces.yaml").read_text())["defaults"]
                  if isinstance(d, dict) for k in d}


def test_groups_present():
    assert {"data", "model", "optim", "trainer", "augment", "debug"} <= set(GROUPS)


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes(hydra_cfg, group, option):
    faces = group in FACE_GROUPS or (group, option) == ("benchmark", "faces")
    overrides = [f"{'' if group in (_FACE_DEFAULTS if faces else _DEFAULTS) else '+'}{group}={option}"]
    if (group, option) in (("data", "folder"), ("data", "masks"), ("data", "voc")):
        overrides.append("data.root=/some/images")
    if faces:
        from cnnlab.config import compose

        cfg = compose(*overrides, conf=REPO / "conf", config_name="faces")   # the face stages' entry config
    else:
        cfg = hydra_cfg(*overrides)
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    node = cfg.get(group)
    if group == "model":
        from cnnlab.models import default_input_size

        assert len(default_input_size(cfg.model.name)) >= 2
        assert "_target_" not in cfg.model  # the model is built from its registry name (test_naming_chain.py)
    elif group in ("optim",):
        opt = instantiate(node)([torch.nn.Parameter(torch.zeros(2))])
        assert isinstance(opt, torch.optim.Optimizer)
    elif group == "augment":
        assert callable(instantiate(node))
    elif group == "trainer":
        import lightning as L

        from cnnlab.tasks.fit import trainer_config

        kwargs = trainer_config(cfg)
        kwargs.update(accelerator="cpu", enable_progress_bar=False, logger=False)  # no GPU in CI
        if kwargs.get("strategy") == "ddp":
            kwargs["devices"] = 2
        assert isinstance(instantiate(kwargs), L.Trainer)


def test_folder_composes_without_root(hydra_cfg):
    """data.root is needed by prepare only (it says so, tests/test_bad_input.py); later stages of
    data=folder read the prepared data set and must not fail on a missing data.root."""
    cfg = hydra_cfg("data=folder", "data.name=mine")
    resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert resolved["data"]["root"] is None and resolved["paths"]["prepared"] == "data/prepared/mine"
