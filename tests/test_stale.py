"""cnnlab.stale: which stages `make run` forces, from a `dvc status --json` report."""

from __future__ import annotations

import pytest

from cnnlab.stale import deleted_stages, stage_outputs

STATUS = {
    "train-a": [{"changed deps": {"src/x.py": "modified"}},
                {"changed outs": {"models/a/best.ckpt": "deleted", "models/a/metrics.json": "modified"}}],
    "evaluate-a": [{"changed deps": {"models/a/best.ckpt": "deleted"}}],
    "select": [{"changed deps": {"reports/a/metrics.json": "modified"}}],   # edited, nothing missing
    "data/own.dvc": [{"changed outs": {"data/own": "deleted"}}],          # dvc add: no job to force
    "dvc.yaml:prepare": [{"changed outs": {"data/p": "deleted"}}],
}
PIPELINE = {"stages": {
    "train-a": {"outs": ["models/a/best.ckpt", {"models/a/history.csv": {"cache": False}}],
                "metrics": [{"models/a/metrics.json": {"cache": False}}]},
    "evaluate-a": {"outs": [{"reports/a/details.json": {"cache": False}}], "plots": ["reports/a/pr.png"]},
    "select": {"outs": ["reports/selection.json"]},
    "prepare": {"outs": ["data/p"]},
}}


def test_only_stages_with_a_deleted_file_are_stale():
    assert deleted_stages(STATUS) == ["evaluate-a", "prepare", "train-a"]


def test_every_output_kind_of_a_stale_stage_is_forced():
    assert stage_outputs(PIPELINE, ["evaluate-a", "train-a"]) == [
        "models/a/best.ckpt", "models/a/history.csv", "models/a/metrics.json", "reports/a/details.json",
        "reports/a/pr.png"]


def test_a_stage_missing_from_dvc_yaml_says_how_to_fix_it():
    with pytest.raises(KeyError, match="make dvc-yaml"):
        stage_outputs(PIPELINE, ["gone"])


def test_declared_outputs_say_which_are_cached():
    from cnnlab.stale import declared_outputs

    assert dict(declared_outputs(PIPELINE["stages"]["train-a"])) == {
        "models/a/best.ckpt": True, "models/a/history.csv": False, "models/a/metrics.json": False}
