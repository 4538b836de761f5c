"""Deterministic cached outputs: the same stage with the same seed writes the same bytes.

DVC caches what a stage writes, and the committed ``dvc.lock`` is only reproducible where a rerun
gives the same bytes. CPU training is deterministic here (``trainer.deterministic``, per-sample
seeds drawn in the main process), so two train runs, in different folders, give byte-identical
checkpoints, histories and evaluation outputs. ``metrics.json`` files are not compared: they hold
measured timings, which is why dvc.yaml declares them ``cache: false``.
"""

from __future__ import annotations

from pathlib import Path

from conftest import REPO, run, run_env, stage

CACHED_TRAIN = ("best.ckpt", "last.ckpt", "history.csv")
CACHED_EVAL = ("predictions.csv", "per_class.csv")


def _train_and_evaluate(root: Path, prepared: Path) -> tuple[Path, Path]:
    env = run_env(root)
    out, ev = root / "run", root / "eval"
    common = [f"paths.prepared={prepared}", f"paths.run={out}", f"paths.eval={ev}", "debug=tiny", "seed=3"]
    run(stage("train", *common), REPO, env)
    run(stage("evaluate", *common), REPO, env)
    return out, ev


def test_same_seed_gives_byte_identical_checkpoints_and_evaluations(tmp_path, tiny_digits):
    (a_run, a_eval), (b_run, b_eval) = (_train_and_evaluate(tmp_path / n, tiny_digits) for n in ("a", "b"))
    for name in CACHED_TRAIN:
        assert (a_run / name).read_bytes() == (b_run / name).read_bytes(), name
    for name in CACHED_EVAL:
        assert (a_eval / name).read_bytes() == (b_eval / name).read_bytes(), name
    # the checkpoint records no path of the machine or folder it was written in
    assert str(tmp_path).encode() not in (a_run / "best.ckpt").read_bytes()

