"""One DAG, two tools: dvc.yaml must be exactly what the Snakefile's DAG exports."""

from __future__ import annotations

import sys

import yaml
from conftest import REPO, run, run_env

from cnnlab.dag import parse_dry_run, render, snakemake_jobs, to_dvc


def test_committed_dvc_yaml_agrees_with_snakefile(tmp_path):
    res = run([sys.executable, "-m", "cnnlab.dag", "--check"], REPO, run_env(tmp_path), check=False)
    assert res.returncode == 0, res.stderr


def test_every_snakemake_job_is_a_dvc_stage_with_same_cmd_deps_outs():
    jobs = snakemake_jobs(cwd=REPO)
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert {j.stage_name for j in jobs} == set(stages)
    for job in jobs:
        st = stages[job.stage_name]
        outs = st.get("outs", []) + [next(iter(m)) for m in st.get("metrics", []) + st.get("plots", [])]
        assert st["cmd"] == job.shell
        assert sorted(st["deps"]) == sorted(job.input)
        assert sorted(outs) == sorted(job.output)
        assert job.log and job.benchmark, f"rule {job.rule} needs log: and benchmark:"


def test_check_fails_when_the_two_disagree(tmp_path):
    edited = tmp_path / "dvc.yaml"
    text = (REPO / "dvc.yaml").read_text().replace("seed=0", "seed=1", 1)
    edited.write_text(text)
    res = run([sys.executable, "-m", "cnnlab.dag", "--check", "-o", str(edited)], REPO, run_env(tmp_path), check=False)
    assert res.returncode == 1 and "differs" in res.stderr


def test_parse_dry_run_reads_fields():
    text = """
rule train:
    input: a/b, c.yaml
    output: m/best.ckpt, m/metrics.json
    log: logs/t.log
    jobid: 2
    benchmark: logs/bench/t.tsv
    wildcards: dataset=digits, seed=3
Shell command: python -m x seed=3 > logs/t.log 2>&1

localrule all:
    input: m/metrics.json
Shell command: None
"""
    (job,) = parse_dry_run(text)
    assert job.stage_name == "train-digits-seed3"
    assert job.input == ["a/b", "c.yaml"] and job.shell.startswith("python -m x")
    dvc = yaml.safe_load(render(to_dvc([job])))["stages"]["train-digits-seed3"]
    assert dvc["outs"] == ["m/best.ckpt"] and dvc["metrics"] == [{"m/metrics.json": {"cache": False}}]
