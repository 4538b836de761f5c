"""`train model=<name>` works for every image architecture on the embedded digits (resized as needed)."""

from __future__ import annotations

import pytest
from conftest import REPO
from omegaconf import open_dict

from cnnlab.models import get_entry
from cnnlab.tasks.fit import fit

FAST = {"lenet5", "course_lenet_example", "course_39x39_example", "nin", "resnet18", "mobilenet_v1",
        "mobilenet_v2", "googlenet", "efficientnet_b0", "alexnet"}
NOT_IMAGES = {"conv1d_net", "conv3d_net"}
SEGMENTERS = {p.stem for p in (REPO / "conf" / "model").glob("*.yaml")  # trained by train_segmenter (test_unet.py)
              if get_entry(p.stem).default_cfg.get("task") == "segmentation"}
MODELS = sorted(p.stem for p in (REPO / "conf" / "model").glob("*.yaml") if p.stem not in NOT_IMAGES | SEGMENTERS)
PARAMS = [pytest.param(m, marks=() if m in FAST else pytest.mark.slow) for m in MODELS]


@pytest.mark.parametrize("model", PARAMS)
def test_one_step_of_training(model, hydra_cfg, tiny_digits, tmp_path):
    cfg = hydra_cfg(f"model={model}", "debug=tiny", "batch_size=2", "num_workers=0", "trainer.max_epochs=1",
                    "+trainer.limit_train_batches=1", "+trainer.limit_val_batches=1",
                    "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
                    f"paths.prepared={tiny_digits}", f"paths.run={tmp_path / 'run'}")
    metrics = fit(cfg)
    assert metrics["epochs"] == 1 and 0.0 <= metrics["best_val_acc"] <= 1.0
    assert (tmp_path / "run" / "best.ckpt").is_file()


@pytest.mark.parametrize("model", sorted(NOT_IMAGES))
def test_non_image_models_refuse_image_data(model, hydra_cfg, tiny_digits, tmp_path):
    cfg = hydra_cfg(f"model={model}", f"paths.prepared={tiny_digits}", f"paths.run={tmp_path / 'run'}")
    with pytest.raises(ValueError, match="not images"):
        fit(cfg)
