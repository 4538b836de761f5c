"""Snakemake recovers by itself after kill -9 (issue 14, part 4).

Units: the stale-lock guard and the parent watch. Slow: a real Snakemake run killed with
``kill -9`` while it trains, then the plain command again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BIN, copy_repo, run, run_env


def test_stale_lock_is_removed_only_when_no_run_holds_the_flock(tmp_path):
    from cnnlab import workflow_guard

    locks = tmp_path / ".snakemake/locks"
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text("x")
    # another live run: a child process holds the flock
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl,sys,time;f=open(sys.argv[1],'a+');"
                               "fcntl.flock(f,fcntl.LOCK_EX);print('held',flush=True);time.sleep(60)",
                               str(tmp_path / ".snakemake/cnnlab-run.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert workflow_guard.claim_workdir(tmp_path / ".snakemake") is False
        assert (locks / "0.input.lock").is_file()               # a live run's lock is left alone
    finally:
        holder.kill()
        holder.wait()
    # that run was killed (-9): the kernel dropped its flock, so the lock file is stale
    assert workflow_guard.claim_workdir(tmp_path / ".snakemake") is True
    assert not locks.exists()
    assert os.environ[workflow_guard.ENV_PID] == str(os.getpid())


def test_a_job_stops_when_its_snakemake_is_gone(tmp_path):
    """The watch thread SIGTERMs a stage whose parent Snakemake died (kill -9 leaves orphans)."""
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    code = ("import time, cnnlab.workflow_guard as g; g.watch_parent(interval=0.2); time.sleep(30); print('ran on')")
    env = {**os.environ, "CNNLAB_WATCH_PID": str(parent.pid), "CNNLAB_WATCH_START": ""}
    child = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    time.sleep(1.5)
    assert child.poll() is None                                  # parent alive: the job runs
    parent.kill()
    parent.wait()
    out, _ = child.communicate(timeout=20)
    assert child.returncode == -signal.SIGTERM and "ran on" not in out


@pytest.mark.slow
def test_kill_9_of_snakemake_then_the_plain_command_rebuilds(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    env = run_env(tmp_path)
    target = "models/digits/lenet5/seed0/best.ckpt"
    # a tiny data set, but enough epochs that the kill lands inside training
    cmd = [str(BIN / "snakemake"), "--cores", "1", target, "--config",
           "overrides=debug=tiny trainer.max_epochs=40 early_stopping.patience=40"]
    proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    log = repo / "logs/train-digits-lenet5-seed0.log"
    partial = repo / "models/digits/lenet5/.seed0.partial"
    deadline = time.time() + 600
    while not (partial.is_dir() and any(partial.glob("*.ckpt"))):    # an epoch's checkpoint exists
        assert time.time() < deadline and proc.poll() is None, log.read_text() if log.is_file() else "no log"
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)                             # Snakemake only: its job is orphaned
    proc.wait()
    assert (repo / ".snakemake/locks").is_dir() and any((repo / ".snakemake/locks").iterdir())
    deadline = time.time() + 60                                   # the orphan stops by itself
    while _train_running(repo):
        assert time.time() < deadline, "the train job ran on after its Snakemake was killed"
        time.sleep(0.5)
    assert not (repo / target).exists()
    assert partial.is_dir()                                       # SIGTERM kept the partial run
    run(cmd, repo, env, timeout=900)                              # no --unlock, no target named by hand
    assert (repo / target).is_file() and (repo / "models/digits/lenet5/seed0/last.ckpt").is_file()


def _train_running(repo: Path) -> bool:
    """A live process whose working directory is ``repo`` runs the train stage."""
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if os.readlink(p / "cwd") == str(repo) and b"cnnlab.stages.train" in (p / "cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False
