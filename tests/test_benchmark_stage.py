"""The benchmark: cost measurements, the docs table, the face grid, and the stage end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import yaml
from conftest import REPO, run, run_env, stage

from cnnlab.evaluate.benchmark import (LiveBytes, accuracy, face_crop_grid, gain_cost_markdown, load_split_images,
                                       peak_memory_bytes, publish, run_benchmark)
from cnnlab.evaluate.ensemble import load_ensemble
from cnnlab.evaluate.multicrop import CENTRE, FLIP, TEN, MultiCropPredictor, multicrop_embed
from cnnlab.track import list_artifacts


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_live_bytes_tracks_the_peak_of_live_tensors():
    x = torch.zeros(1000)  # 4000 bytes, created outside: not counted
    with torch.inference_mode(), LiveBytes() as live:
        y = ((x * 2) + 1) * 3  # x*2 is freed before *3 allocates: never three 4000-byte tensors at once
    assert y.numel() == 1000 and live.peak == 8000
    with torch.inference_mode(), LiveBytes() as live:
        a, b, c = x * 2, x + 1, x - 1  # all three alive together
    assert live.peak == 12000 and a.numel() + b.numel() + c.numel() == 3000
    lin = nn.Linear(10, 5)  # 55 float32 parameters; output [4, 5]
    assert peak_memory_bytes(lin, torch.zeros(4, 10)) == 55 * 4 + 4 * 5 * 4


def _metrics(acc: dict[str, float]) -> dict[str, float]:
    m = {"n_members": 3, "n_crops.centre": 1, "n_crops.ten": 10}
    for cell, a in acc.items():
        m |= {f"{cell}.acc": a, f"{cell}.latency_x": 2.0, f"{cell}.memory_x": 1.5}
    return m


def test_gain_cost_markdown_lists_errors_and_references(tmp_path: Path):
    m = _metrics({"single.centre": 0.90, "single.ten": 0.92, "ensemble.centre": 0.93, "ensemble.ten": 0.95})
    text = gain_cost_markdown({"digits, LeNet-5": m})
    assert "| digits, LeNet-5 | single | ten (10) | 8.00 % | -2.00 | 2.00× | 1.50× |" in text
    assert "| digits, LeNet-5 | ensemble of 3 | ten (10) | 5.00 % | -5.00 |" in text
    assert "10.07 % → 9.15 % | -0.92 |" in text and "24.80 % → 23.00 % | -1.80 |" in text
    (tmp_path / "m.json").write_text(json.dumps(m))
    doc = publish({"digits": tmp_path / "m.json"}, path=tmp_path / "B.md", command="x")
    assert "<!-- bench:ensemble-multicrop -->" in doc.read_text() and "GoogLeNet" in doc.read_text()


def test_face_grid_scores_averaged_embeddings():
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(16, 4)).eval()
    images, labels = torch.randn(6, 1, 5, 5), torch.tensor([0, 0, 1, 1, 2, 2])
    seen = {}

    def score(emb, lab):
        seen[len(seen)] = emb
        return {"rank1": float(lab[0] == 0), "dim": emb.shape[1]}

    m = face_crop_grid(encoder, images, labels, {"flip": FLIP}, (4, 4), score, batch_size=4, repeats=1)
    with torch.no_grad():
        assert torch.allclose(seen[0], multicrop_embed(encoder, images, CENTRE, (4, 4)))
        assert torch.allclose(seen[1], multicrop_embed(encoder, images, FLIP, (4, 4)))
    assert m["centre.rank1"] == 1.0 and m["flip.dim"] == 4 and m["n_crops.flip"] == 2
    assert m["centre.latency_x"] == 1.0 and m["flip.memory_x"] > 1.0


def _train_seeds(hydra_cfg, prepared: Path, models: Path, seeds: list[int]) -> list[Path]:
    from cnnlab.tasks.fit import fit

    for s in seeds:
        cfg = hydra_cfg("debug=tiny", f"paths.prepared={prepared}", f"paths.run={models}/seed{s}", f"seed={s}",
                        "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
                        "trainer.enable_model_summary=false", "num_workers=0")
        fit(cfg)
    return [models / f"seed{s}" / "best.ckpt" for s in seeds]


def _benchmark_group_override() -> str:
    # `+` adds the group when conf/config.yaml does not list it in its defaults yet.
    defaults = yaml.safe_load((REPO / "conf" / "config.yaml").read_text())["defaults"]
    listed = any(isinstance(d, dict) and "benchmark" in d for d in defaults)
    return "benchmark=default" if listed else "+benchmark=default"


def test_benchmark_stage_end_to_end(tmp_path: Path, tiny_digits: Path, hydra_cfg):
    ckpts = _train_seeds(hydra_cfg, tiny_digits, tmp_path / "models", [0, 1])
    out = tmp_path / "bench"
    run(stage("benchmark", _benchmark_group_override(), f"paths.prepared={tiny_digits}",
              f"benchmark.models_dir={tmp_path / 'models'}", "benchmark.seeds=[0,1]", f"benchmark.out={out}",
              "benchmark.batch_size=8", "benchmark.repeats=2"), REPO, run_env(tmp_path))

    m = json.loads((out / "metrics.json").read_text())
    assert m["n_members"] == 2 and m["n_crops.ten"] == 10 and m["n_crops.shift_scale"] == 6
    for models in ("single", "ensemble"):
        for crops in ("centre", "ten", "shift_scale"):
            assert 0.0 <= m[f"{models}.{crops}.acc"] <= 1.0
            assert m[f"{models}.{crops}.latency_ms"] > 0 and m[f"{models}.{crops}.memory_x"] > 0
    assert m["single.centre.latency_x"] == 1.0 and m["single.centre.memory_x"] == 1.0
    # Ten crops hold ten times the activations; two members twice the parameters.
    assert m["single.ten.memory_mib"] > 5 * m["single.centre.memory_mib"]
    assert m["ensemble.centre.memory_mib"] > m["single.centre.memory_mib"]

    # The numbers are what the library computes from the same checkpoints.
    ens, hp = load_ensemble(ckpts)
    images, targets, _ = load_split_images(tiny_digits, hp, 1.143)
    assert m["n_test"] == len(targets)
    assert m["ensemble.centre.acc"] == pytest.approx(accuracy(MultiCropPredictor(ens, CENTRE, (32, 32)),
                                                              images, targets, 8))
    assert m["single.ten.acc"] == pytest.approx(accuracy(MultiCropPredictor(ens.members[0], TEN, (32, 32)),
                                                         images, targets, 8))
    # the baseline row scores the first checkpoint exactly as the evaluate stage does
    from cnnlab.evaluate.classification import evaluate_checkpoint

    evaluated = evaluate_checkpoint(ckpts[0], tiny_digits, tmp_path / "eval", latency_repeats=1)
    assert m["single.as_evaluated.acc"] == pytest.approx(evaluated["accuracy"])
    table = (out / "table.md").read_text()
    assert "| single (first) | as_evaluated | 1 |" in table
    assert "| ensemble of 2 | ten | 10 |" in table and "| single, mean ± std of 2 | shift_scale | 6 |" in table

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("cnnlab").experiment_id],
                              "tags.stage = 'benchmark'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.metrics["ensemble.ten.acc"] == pytest.approx(m["ensemble.ten.acc"])
    assert runs[0].data.tags["seeds"] == "0,1" and runs[0].data.params["benchmark.resize"] == "1.143"
    arts = set(list_artifacts(client.tracking_uri, runs[0].info.run_id, "benchmark"))
    assert {"benchmark/table.md", "benchmark/metrics.json"} <= arts


def test_missing_checkpoint_is_named_and_nothing_written(tmp_path: Path, tiny_digits: Path):
    missing = tmp_path / "models" / "seed0" / "best.ckpt"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        run_benchmark([missing], tiny_digits, {"ten": TEN}, tmp_path / "b")
    assert not (tmp_path / "b").exists()
