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
    assert {"best.ckpt", "last.ckpt", "metrics.json", "history.csv", "learning_curves.png"} <= {p.name for p in out.iterdir()}
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
    assert abs(m["accuracy"] - sum(r["actual"] == r["predicted"] for r in rows) / len(rows)) < 1e-6
    assert m["errors"] == sum(r["actual"] != r["predicted"] for r in rows)
    # macro precision/recall/F1 and the per-class table agree with a direct computation
    from sklearn.metrics import precision_recall_fscore_support

    labels = [str(i) for i in range(10)]
    y, p = [r["actual"] for r in rows], [r["predicted"] for r in rows]
    prec, rec, f1, sup = precision_recall_fscore_support(y, p, labels=labels, zero_division=0)
    assert abs(m["macro_f1"] - f1.mean()) < 1e-4 and abs(m["macro_recall"] - rec.mean()) < 1e-4
    per = {r["class"]: r for r in csv.DictReader(open(ev / "per_class.csv"))}
    for i, c in enumerate(labels):
        assert abs(float(per[c]["f1"]) - f1[i]) < 1e-3 and int(per[c]["support"]) == sup[i]
    assert m["latency_ms_per_image"] > 0 and m["num_params"] == 61706 and m["model_size_mb"] > 0.2
    for png in ("confusion.png", "errors.png"):
        assert (ev / png).stat().st_size > 1000


def test_select_maximises_val_accuracy_within_budget_and_reports_only_the_chosen_test_score(tmp_path):
    from cnnlab.evaluate.select import select_model, selection_markdown

    files, ckpts, lat = [], [], {}
    # test accuracy disagrees with val on purpose: "overfit_test" would win on test, "good" wins on val
    for name, val, test, ms in (("fast", 0.95, 0.95, 0.5), ("best_but_slow", 0.99, 0.99, 5.0),
                                ("good", 0.97, 0.90, 0.9), ("overfit_test", 0.96, 0.999, 0.8)):
        f, c = tmp_path / f"{name}.json", tmp_path / f"{name}.ckpt"
        f.write_text(json.dumps({"accuracy": test, "n": 1000, "errors": round(1000 * (1 - test)),
                                 "val_accuracy": val, "val_n": 200}))
        c.write_bytes(b"x")
        files.append(f), ckpts.append(c)
        lat[str(c)] = ms
    res = select_model(files, ckpts, latency_budget_ms=1.0, latency=lambda c: lat[str(c)])
    assert res["chosen"]["checkpoint"].endswith("good.ckpt")
    assert res["chosen"]["test_accuracy"] == 0.90 and res["chosen"]["test_errors"] == 100
    lo, hi = res["chosen"]["test_interval_95"]
    assert lo < 0.90 < hi and hi - lo < 0.05
    assert [r["meets_budget"] for r in res["candidates"]] == [False, True, True, True]
    assert all("test_accuracy" not in r and "accuracy" not in r for r in res["candidates"])
    assert select_model(files, ckpts, latency_budget_ms=0.1, latency=lambda c: lat[str(c)])["chosen"] is None
    md = selection_markdown(res)
    assert "**" in md and "900 of 1000" in md and "0.999" not in md


def test_pinned_latency_is_a_positive_median(tmp_path):
    import torch

    from cnnlab.evaluate.select import pinned_latency_ms

    threads = torch.get_num_threads()
    ms = pinned_latency_ms(torch.nn.Linear(8, 2), torch.zeros(1, 8), repeats=5)
    assert 0 < ms < 100 and torch.get_num_threads() == threads