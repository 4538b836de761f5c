"""Recovery after a killed Snakemake run: stale locks, and jobs that outlive their Snakemake.

Snakemake locks the work tree (``.snakemake/locks/``) and releases the lock on exit; a ``kill -9``
leaves it behind, and the next run refuses to start until ``snakemake --unlock``. The Snakefile
calls :func:`claim_workdir` when it is parsed, before Snakemake takes its lock: it holds an
advisory ``flock`` on ``.snakemake/cnnlab-run.lock`` for the life of the process. The kernel
drops that flock when a process dies, however it dies, so holding it proves that no other
Snakemake of this workflow is alive, and only then are Snakemake's own lock files (stale by
construction) removed. A second Snakemake started while one runs does not get the flock, leaves
the locks alone, and Snakemake stops it as usual ("Directory cannot be locked").

:func:`claim_workdir` also exports ``CNNLAB_WATCH_PID`` (and the process start time), inherited by
every job; a stage started with it runs :func:`watch_parent`, a thread that sends the stage
SIGTERM when that Snakemake process is gone (under ``dvc repro``, which DVC runs through a
shell, the stage watches its nearest ``dvc`` ancestor the same way). A ``kill -9`` of Snakemake alone therefore stops its
jobs too, the way SIGTERM does (training keeps its partial checkpoint, to be resumed), instead of
leaving orphans that run on and race the next run for the same outputs.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import signal
import threading
from pathlib import Path

ENV_PID, ENV_START = "CNNLAB_WATCH_PID", "CNNLAB_WATCH_START"
log = logging.getLogger("cnnlab")
_held: list = []          # the open lock file, kept for the life of the process


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks): tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


def claim_workdir(root: str | Path = ".snakemake") -> bool:
    """Take the workflow's run flock; if it is free, remove Snakemake's stale locks.

    Safe in a dry run too: holding the flock is what proves the locks stale.

    Args:
        root: Snakemake's state folder.

    Returns:
        True if this process holds the flock (no other Snakemake of this workflow is running).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    fh = open(root / "cnnlab-run.lock", "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        return False
    _held.append(fh)
    locks = root / "locks"
    if locks.is_dir() and any(locks.iterdir()):
        log.warning("removing the stale Snakemake lock left by a killed run (%s)", locks)
        shutil.rmtree(locks, ignore_errors=True)
    os.environ[ENV_PID] = str(os.getpid())
    os.environ[ENV_START] = _start_time(os.getpid()) or ""
    return True


def _dvc_driver() -> int | None:
    """The nearest ancestor that is ``dvc repro`` / ``dvc exp run`` (DVC runs stages through a shell)."""
    pid = os.getppid()
    while pid > 1:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            return None
        names = [os.path.basename(a.decode(errors="replace")) for a in argv[:3]]
        if "dvc" in names[:2] and {"repro", "exp"} & set(names):
            return pid
        pid = ppid
    return None


def watch_parent(interval: float = 2.0) -> threading.Thread | None:
    """In a job of a Snakemake run or a ``dvc repro``: SIGTERM this process once that driver is gone.

    Does nothing outside such a job (no ``CNNLAB_WATCH_PID``, no ``dvc repro`` ancestor).
    """
    pid = os.environ.get(ENV_PID)
    start = os.environ.get(ENV_START) or None
    if not pid:
        pid, start = _dvc_driver(), None
    if not pid:
        return None
    pid = int(pid)
    if start is None:
        start = _start_time(pid)

    def _run() -> None:
        stop = threading.Event()
        while not stop.wait(interval):
            if _start_time(pid) != start:
                log.error("the Snakemake run that started this job (pid %d) is gone: stopping", pid)
                os.kill(os.getpid(), signal.SIGTERM)
                return

    thread = threading.Thread(target=_run, name="cnnlab-watch-parent", daemon=True)
    thread.start()
    return thread
