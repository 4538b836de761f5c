"""The train and evaluate stages: checkpoints that carry their metadata, metrics that agree."""

from __future__ import annotations

import csv
import json

import torch
from conftest import REPO, run, run_env, stage

from cnnlab.tasks.classifier import load_checkpoint


def test_train_then_evaluate(tmp_path, tiny_digits):
    env = run_env(tmp_path)
    out, ev = tmp_path / "run", tmp_path / "eval"
    common = [f"paths.prepared={tiny_digits}", f"paths.run={out}", f"paths.eval={ev}", "debug=tiny",
              "trainer.max_epochs=4", "early_stopping.patience=10"]
    run(stage("train", *common), REPO, env)
    assert sorted(p.name for p in out.iterdir()) == ["best.ckpt", "last.ckpt", "metrics.json"]
    assert not list(tmp_path.glob(".run*")), "no partial folder left behind"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 4 and metrics["best_val_acc"] > 0.3  # 10 classes: chance is 0.1

    ckpt = torch.load(out / "best.ckpt", weights_only=True)  # plain types only
    hp = ckpt["hyper_parameters"]
    assert hp["arch"] == "lenet5" and hp["classes"] == [str(i) for i in range(10)]
    assert hp["in_chans"] == 1 and hp["input_size"] == [32, 32] and len(hp["normalization"]["mean"]) == 1
    assert "num_classes" not in hp
    model, _ = load_checkpoint(out / "best.ckpt")
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 10)

    run(stage("evaluate", *common), REPO, env)
    m = json.loads((ev / "metrics.json").read_text())
    rows = list(csv.DictReader(open(ev / "predictions.csv")))
    assert m["n"] == len(rows)
    assert abs(m["accuracy"] - sum(r["label"] == r["pred"] for r in rows) / len(rows)) < 1e-6
    assert (ev / "confusion.png").stat().st_size > 1000
