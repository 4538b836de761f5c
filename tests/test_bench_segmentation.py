"""The segmentation benchmark's table and overrides (the benchmark itself runs for many minutes)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnlab.bench.segmentation import _overrides, table

CLASSES = ["background", "face"]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_a_model_that_could_not_run_gets_a_row_that_says_why_with_every_column():
    rows = [{"model": "unet", "miou": 0.9, "dice": 0.95, "pixel_acc": 0.98, "iou": {"background": 0.99, "face": 0.81},
             "params": 1234, "ms": 3.21, "train_s": 100.4},
            {"model": "smp_unet", "missing": "not run: model=smp_unet needs segmentation_models_pytorch"}]
    header, rule, ok, missing = table(rows, CLASSES).splitlines()
    assert len(_cells(ok)) == len(_cells(header)) == len(_cells(missing)) == len(_cells(rule))
    assert _cells(ok)[:3] == ["`unet`", "0.900", "0.950"] and "1,234" in ok
    assert _cells(missing)[1].startswith("not run: model=smp_unet needs")


def test_every_model_gets_the_same_budget_and_loss():
    args = argparse.Namespace(n_filters=16, smp_encoder="resnet18", size=64, epochs=3, batch_size=8, loss="ce_dice",
                              lr=0.003, workers=0, seed=0, trainer="gpu")
    for model in ("unet", "encoder_decoder", "unet_backbone", "smp_unet"):
        ov = _overrides(model, args, Path("/tmp/w"))
        assert {"segmenter.size=64", "trainer.max_epochs=3", "segmenter.batch_size=8", "segmenter.loss=ce_dice",
                "optim.lr=0.003", f"model={model}", "trainer=gpu"} <= set(ov)
        assert ("model.n_filters=16" in ov) == (model in ("unet", "encoder_decoder"))
