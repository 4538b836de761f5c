"""Stages rerun exactly when what they read changes, under both tools (issue 13, part 2).

In a scratch copy of the repository, Snakemake runs the default DAG with a stand-in ``python``
that writes each job's outputs as placeholders (so Snakemake records its real metadata), then DVC
records the result (``dvc commit``) and ``snakemake --touch`` restores the mtime order, as
``make run`` does: both tools agree that nothing is to be done. Each test then edits one thing, asks both tools what they would run
(``snakemake -n``; ``dvc status``, which lists the stages whose own deps or params changed), and
puts the file back.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from pathlib import Path

import pytest
from conftest import BIN, REPO, copy_repo, run, run_env

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
WORKFLOW = __import__("yaml").safe_load((REPO / "workflow/config.yaml").read_text())
TRANSFER_STRATEGIES = WORKFLOW["transfer"]["strategies"]
LENET_SEEDS = len(WORKFLOW["seeds"])


FAKE_PYTHON = f"""#!{sys.executable}
# Stands in for `python -m cnnlab.stages.<stage> ...` in a job: writes that job's outputs.
import json, os, sys
from pathlib import Path
outs = json.loads(Path(os.environ["FAKE_JOBS"]).read_text())[json.dumps(sys.argv[1:])]
for out in outs:
    p = Path(out)
    if p.suffix:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(out + "\\n")
    else:
        p.mkdir(parents=True, exist_ok=True)
        (p / "placeholder.txt").write_text(out + "\\n")
"""


def _fake_stages(repo: Path, tmp: Path, env: dict) -> dict:
    """An env whose `python` writes each job's outputs instead of running the stage.

    Snakemake then runs the real DAG (and records its metadata: params, code, inputs) in seconds.
    """
    from cnnlab.dag import snakemake_jobs

    jobs = {}
    for job in snakemake_jobs(cwd=repo, template=False):
        args = shlex.split(job.shell)
        jobs[json.dumps(args[1:args.index(">")])] = job.output
    (tmp / "jobs.json").write_text(json.dumps(jobs))
    fake = tmp / "fakebin"
    fake.mkdir()
    (fake / "python").write_text(FAKE_PYTHON)
    (fake / "python").chmod(0o755)
    return {**env, "PATH": f"{fake}{os.pathsep}{env['PATH']}", "FAKE_JOBS": str(tmp / "jobs.json")}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reruns")
    repo = copy_repo(tmp / "repo")
    env = run_env(tmp)
    run(["git", "init", "-q"], repo, env)
    run([*GIT, "add", "-A"], repo, env)
    run([*GIT, "commit", "-qm", "init"], repo, env)
    # --cores 1, as the dry run that listed the commands (threads={threads} appears in them)
    run([str(BIN / "snakemake"), "--cores", "1"], repo, _fake_stages(repo, tmp, env))
    run([str(BIN / "dvc"), "commit", "--force", "--quiet"], repo, env)
    run([str(BIN / "snakemake"), "--touch", "--cores", "1", "--quiet"], repo, env)   # as `make run` does
    return repo, env


class Jobs(dict):
    """rule → job count, with the dry run's text (its `reason:` lines) for failure messages."""

    text = ""

    def __repr__(self) -> str:
        reasons = sorted(set(re.findall(r"^\s+reason: (.*)$", self.text, re.M)))
        return f"{dict(self)!r}; reasons: {reasons[:8]}"


def snakemake_jobs_to_run(repo: Path, env: dict, *args: str) -> Jobs:
    """rule → jobs that ``snakemake -n [args]`` would run (the default profile applies)."""
    res = run([str(BIN / "snakemake"), "-n", "--cores", "2", *args], repo, env)
    jobs = Jobs()
    jobs.text = res.stdout + res.stderr
    if "Nothing to be done" not in jobs.text:
        table = jobs.text.split("Job stats:")[1].split("total")[0]
        jobs.update({m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m[1] != "all"})
    return jobs


def dvc_changed(repo: Path, env: dict) -> set[str]:
    """Stages ``dvc status`` reports as changed."""
    res = run([str(BIN / "dvc"), "status"], repo, env)
    return set(re.findall(r"^([\w.@-]+):$", res.stdout, re.M))


def edited(path: Path, old: str, new: str):
    text = path.read_text()
    assert old in text, f"{path}: {old!r} not found"
    path.write_text(text.replace(old, new, 1))
    return text


def test_both_tools_agree_nothing_to_do_after_dvc_commit(recorded):
    repo, env = recorded
    assert snakemake_jobs_to_run(repo, env) == {}
    assert dvc_changed(repo, env) == set()


@pytest.mark.slow
def test_push_then_pull_in_a_second_clone_leaves_nothing_to_do(recorded, tmp_path):
    """The committed-lock workflow: commit dvc.lock (+ the un-cached metrics), push, clone, pull."""
    repo, env = recorded
    dvc = str(BIN / "dvc")
    (repo / ".dvc/config.local").write_text(f"['remote \"local\"']\n    url = {tmp_path / 'remote'}\n")
    run([*GIT, "add", "-A"], repo, env)
    run([*GIT, "commit", "-qm", "results"], repo, env)
    tracked = run(["git", "ls-files"], repo, env).stdout.split()
    assert "dvc.lock" in tracked and "reports/selection/selection.json" in tracked    # cache: false, in git
    assert not [f for f in tracked if f.endswith(".ckpt")]                             # cached: DVC's
    run([dvc, "push", "-q"], repo, env)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    (clone / ".dvc/config.local").write_text((repo / ".dvc/config.local").read_text())
    run([dvc, "pull", "-q"], clone, env)
    run([str(BIN / "snakemake"), "--touch", "--cores", "1", "--quiet"], clone, env)   # as `make pull` does
    assert (clone / "models/digits/lenet5/seed0/best.ckpt").is_file()
    assert dvc_changed(clone, env) == set()
    assert snakemake_jobs_to_run(clone, env) == {}


def test_a_clone_with_the_committed_lock_reruns_everything_git_does_not_hold(recorded, tmp_path):
    """A clone has dvc.lock and the `cache: false` outputs but none of the DVC-cached ones. Snakemake
    alone takes a job whose requested outputs are all in git (an evaluation's metrics) for done, and
    skips the chain above it; `make run` forces what `dvc status` finds deleted (cnnlab.stale)."""
    repo, env = recorded
    run([*GIT, "add", "-A"], repo, env)
    run([*GIT, "commit", "-qm", "results", "--allow-empty"], repo, env)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    assert (clone / "reports/detection/scenes/yolo/metrics.json").is_file()        # git's
    assert not (clone / "models/detection/scenes/yolo/best.ckpt").exists()         # DVC's
    plain = snakemake_jobs_to_run(clone, env)
    assert "train_detector" not in plain and "evaluate_detector" not in plain, plain   # the trap
    stale = run([sys.executable, "-m", "cnnlab.stale"], clone, env).stdout.split()
    assert "models/detection/scenes/yolo/best.ckpt" in stale, stale
    forced = snakemake_jobs_to_run(clone, env, "--forcerun", *stale)
    assert forced == snakemake_jobs_to_run(clone, env, "--forceall"), forced          # every job of the DAG
    # where everything is present (the recorded workspace) nothing is forced
    assert run([sys.executable, "-m", "cnnlab.stale"], repo, env).stdout.split() == []


def test_editing_lenet_reruns_the_lenet_chain_and_nothing_for_faces(recorded):
    repo, env = recorded
    f = repo / "src/cnnlab/models/lenet.py"
    text = edited(f, '@register_model("lenet5"', '# edited\n@register_model("lenet5"')
    try:
        jobs = snakemake_jobs_to_run(repo, env)
        changed = dvc_changed(repo, env)
    finally:
        f.write_text(text)
    # digits × the seeds + the transfer source, then their evaluations, the ensemble, select, transfer
    assert jobs.get("train") == LENET_SEEDS + 1 and jobs.get("evaluate") == LENET_SEEDS, jobs
    assert jobs.get("benchmark") == 1 and jobs.get("select") == 1, jobs
    assert jobs.get("finetune") == len(TRANSFER_STRATEGIES) and jobs.get("finetune_compare") == 1, jobs
    assert not {r for r in jobs if "face" in r or r in ("align_faces", "calibrate", "import_dlib")}
    assert {"train-digits-lenet5-seed0", "train-digits_0to4-lenet5-seed0", "select"} <= changed
    assert "train-digits-mobilenet_v2-seed0" not in changed           # another family: not rerun
    assert not {s for s in changed if "face" in s or s.startswith(("calibrate", "import_dlib", "align"))}


def test_a_face_config_change_reruns_nothing_for_digits(recorded):
    repo, env = recorded
    f = repo / "conf/face/default.yaml"
    text = edited(f, "target_far: 0.01", "target_far: 0.02")
    try:
        jobs = snakemake_jobs_to_run(repo, env)
        changed = dvc_changed(repo, env)
    finally:
        f.write_text(text)
    assert "calibrate" in jobs, jobs
    assert not set(jobs) & {"prepare", "augment", "train", "evaluate", "benchmark", "select", "finetune"}
    assert changed and not {s for s in changed if "digits" in s or s == "select"}


def test_a_changed_hyper_parameter_reruns_what_it_affects(recorded):
    repo, env = recorded
    f = repo / "params.yaml"
    text = edited(f, "    lr: 0.002\n    epochs: 3", "    lr: 0.01\n    epochs: 3")   # mobilenet_v2's lr
    try:
        jobs = snakemake_jobs_to_run(repo, env)
        changed = dvc_changed(repo, env)
    finally:
        f.write_text(text)
    assert jobs.get("train") == 1 and jobs.get("evaluate") == 1 and jobs.get("select") == 1, jobs
    assert "benchmark" not in jobs and "finetune" not in jobs   # mobilenet_v2 has one seed: no ensemble
    assert changed == {"train-digits-mobilenet_v2-seed0"}
