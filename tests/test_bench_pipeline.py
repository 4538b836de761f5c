"""The pipeline benchmark's bookkeeping: dvc.lock comparison and un-cached outputs (the runs are real
in `python -m cnnlab.bench.pipeline`; these tests check how it reads their files)."""

from __future__ import annotations

from pathlib import Path

import yaml

from cnnlab.bench.pipeline import compare_locks, render, uncached_outs

REPO = Path(__file__).resolve().parents[1]


def _lock(path: Path, train_md5: str, metrics_md5: str, eval_md5: str) -> Path:
    path.write_text(yaml.safe_dump({"schema": "2.0", "stages": {
        "prepare": {"cmd": "p", "outs": [{"path": "data/prepared/d", "md5": "aaa.dir", "size": 3, "nfiles": 1}]},
        "train": {"cmd": "t", "deps": [{"path": "data/prepared/d", "md5": "aaa.dir"}],
                  "outs": [{"path": "models/m/best.ckpt", "md5": train_md5, "size": 1},
                           {"path": "models/m/metrics.json", "md5": metrics_md5, "size": 1}]},
        "evaluate": {"cmd": "e", "outs": [{"path": "reports/e/predictions.csv", "md5": eval_md5, "size": 1}]},
    }}))
    return path


def test_compare_locks_separates_timings_from_real_differences(tmp_path):
    old = _lock(tmp_path / "old.lock", "w1", "m1", "e1")
    new = _lock(tmp_path / "new.lock", "w1", "m2", "e2")
    cmp = compare_locks(new, old, uncached={"models/m/metrics.json"})
    assert cmp["same"] == ["prepare"]
    assert cmp["timings_only"] == {"train": ["models/m/metrics.json"]}
    assert cmp["differ"] == {"evaluate": ["reports/e/predictions.csv"]}
    assert compare_locks(old, old, uncached=set())["same"] == ["evaluate", "prepare", "train"]


def test_uncached_outs_of_the_committed_dag_are_the_metrics_files():
    paths = uncached_outs(REPO / "dvc.yaml")
    assert "reports/eval/digits/lenet5/seed0/metrics.json" in paths
    assert not any(p.endswith(".ckpt") for p in paths)


def test_render_names_every_check_and_flags_a_failure():
    m = {"commit": "abc123", "make_run_s": 600.0, "make_run_cpu_s": 1100.0, "load_before": 0.5,
         "status_clean": True, "snakemake_noop": (True, 3.0), "dvc_noop": (False, 4.0), "push_s": 2.0,
         "pull_s": 5.0, "clone2_status_clean": True, "clone2_repro_noop": True, "clone2_snakemake_noop": True,
         "jobs": [("train-digits-lenet5-seed0", 90.0)], "results": {}, "lock_vs_committed": None,
         "recorded": ["dvc.lock"]}
    text = render(m, 2)
    assert "10.0 min" in text and "18.3 CPU-min ÷ 2 = 9.2 min" in text
    assert "| no-op `dvc repro` after it | nothing to do | **no**, 4.0 s |" in text
    assert "train-digits-lenet5-seed0 90" in text
    failed = render({"commit": "abc123", "make_run_s": 60.0, "error": "dvc status exited 1"}, 2)
    assert "a step failed" in failed and "dvc status exited 1" in failed
