"""Atomic file and directory writes: an interrupted stage never leaves a file that looks complete."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Works for files and directories. The temporary name starts with ``.`` and ends with ``.tmp``
    so that nothing globbing for outputs mistakes it for a finished one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if not target.exists():
            raise FileNotFoundError(f"nothing was written for {path}")
        replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def replace(src: Path, dst: Path) -> None:
    """Move ``src`` onto ``dst``, replacing a previous file or directory there."""
    if dst.is_dir() and not dst.is_symlink():
        trash = dst.with_name(f".{dst.name}.old.tmp")
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(dst, trash)
        os.replace(src, dst)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(src, dst)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write JSON atomically (sorted keys, indented, trailing newline)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    return Path(path)


def headline(metrics: dict[str, Any]) -> dict[str, float]:
    """The top-level numbers (and flags, such as ``stopped_early``) of ``metrics``: what ``dvc metrics
    show`` should list (no names, paths, lists, per-class dicts or matrices)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}


def write_metrics(folder: str | Path, metrics: dict[str, Any]) -> dict[str, float]:
    """Write ``folder/metrics.json`` (:func:`headline`: a DVC metrics file) and ``folder/details.json``
    (all of ``metrics``), each atomically. Returns the headline."""
    head = headline(metrics)
    write_json(Path(folder) / "details.json", metrics)
    write_json(Path(folder) / "metrics.json", head)
    return head


def file_sha256(path: str | Path) -> str:
    """sha256 (hex) of a file's bytes: the identity of a checkpoint recorded beside what it produced."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def write_text(path: str | Path, text: str) -> Path:
    """Write text atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)
