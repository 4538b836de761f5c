"""One naming chain: ``conf/model/<name>.yaml`` ↔ the registry name ↔ a checkpoint's hyper-parameters.

The file's stem is its ``name``, that name is a registered model, the other keys are the builder's
kwargs (``tasks.fit.model_kwargs``), and a checkpoint trained from the file records the same name
as ``arch`` and the same kwargs, from which it is rebuilt. ``conf/model`` declares no ``_target_``:
the registry builds models by name.
"""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from conftest import REPO
from cnnlab.models import create_model
from cnnlab.models.registry import get_entry, list_models
from cnnlab.tasks.classifier import Classifier, load_checkpoint
from cnnlab.tasks.finetune import save_classifier
from cnnlab.tasks.fit import model_kwargs

CONF = sorted((REPO / "conf" / "model").glob("*.yaml"))
# Registered models with no conf/model file: the course's single-layer examples (built by
# `cnnlab summary`, never trained by a stage) and the YOLO backbone (conf/detector/yolo.yaml names it).
NOT_TRAINED_BY_NAME = {"course_depthwise_separable_example", "course_inception_bottleneck_5x5",
                       "course_inception_naive_5x5", "course_normal_conv_example", "darknet_tiny"}


@pytest.mark.parametrize("path", CONF, ids=[p.stem for p in CONF])
def test_model_file_names_a_registered_model_and_its_kwargs(path, hydra_cfg):
    node = OmegaConf.load(path)
    assert "_target_" not in node, f"{path}: models are built by registry name; drop _target_"
    assert node.name == path.stem, f"{path}: name {node.name!r} differs from the file name"
    get_entry(node.name)  # raises for an unregistered name
    cfg = hydra_cfg(f"model={path.stem}")
    kwargs = model_kwargs(cfg)
    assert set(kwargs) == set(node) - {"name"}
    with torch.device("meta"):  # the builder accepts exactly these kwargs (no weights allocated)
        model = create_model(node.name, num_classes=3, **kwargs)
    assert model.arch_name == path.stem


def test_every_registered_model_has_a_model_file_or_a_reason():
    files = {p.stem for p in CONF}
    assert set(list_models()) - files == NOT_TRAINED_BY_NAME


def test_checkpoint_records_the_config_name_and_kwargs(hydra_cfg, tmp_path):
    cfg = hydra_cfg("model=lenet5", "model.act=tanh")
    module = Classifier(arch=cfg.model.name, classes=["a", "b"], in_chans=1, input_size=[32, 32],
                        normalization={"mean": [0.5], "std": [0.5]}, model_kwargs=model_kwargs(cfg))
    path = save_classifier(module, tmp_path / "best.ckpt")
    model, hp = load_checkpoint(path)
    assert hp["arch"] == "lenet5" == model.arch_name
    assert hp["model_kwargs"] == {"act": "tanh", "pool": "max", "dropout": 0.0}
    assert {m.__class__.__name__ for m in model.modules()} >= {"Tanh"}
