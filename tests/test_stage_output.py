"""What a user reads: ``--help`` says what the stage does, and its main options, in a screenful."""

from __future__ import annotations

from conftest import REPO, run, run_env, stage


def test_help_starts_with_what_the_stage_does(tmp_path):
    out = run(stage("train", "--help"), REPO, run_env(tmp_path)).stdout
    lines = out.splitlines()
    assert lines[0].startswith("Stage ``train``"), lines[:3]
    assert "Main options:" in out and "model=NAME" in out and "model: " in out  # groups with their options
    assert len(lines) < 60 and "max_epochs" not in out and "paths:" not in out  # not the whole config
