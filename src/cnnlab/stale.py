"""What ``make run`` must force Snakemake to run: the stages whose recorded files are missing here.

A clone holds ``dvc.lock`` and the ``cache: false`` outputs (metrics, tables: git's), but none of the
DVC-cached ones (data, checkpoints, pictures: in the DVC cache or remote). Snakemake only reruns a
job whose outputs are missing or older than its inputs, so a job whose outputs are all in git (an
evaluation's metrics, a comparison table) looks done to it although its inputs (the checkpoint it
scores) are absent, and the chain above it is never run; ``dvc commit`` then fails on the missing
files. DVC sees it: ``dvc status`` reports those deps and outs as ``deleted``. This module lists the
outputs of every such stage; ``snakemake --forcerun <them>`` reruns those jobs and, through them,
what they need. In a clone that ran or pulled everything, nothing is deleted and nothing is forced,
and a run interrupted half way resumes as before (present outputs are not deleted, only missing).

    python -m cnnlab.stale            # one output path per line (none: nothing to force)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import yaml


def deleted_stages(status: dict) -> list[str]:
    """Stage names of a ``dvc status --json`` report that have a dep or an out ``deleted``.

    Entries that are not ``dvc.yaml`` stages (``.dvc`` files of ``dvc add``) are skipped: there is
    no Snakemake job to force for them.
    """
    stale = []
    for name, changes in status.items():
        if name.endswith(".dvc"):
            continue
        for change in changes if isinstance(changes, list) else []:
            files = {**change.get("changed deps", {}), **change.get("changed outs", {})} if isinstance(change, dict) else {}
            if "deleted" in files.values():
                stale.append(name.split(":")[-1])   # "dvc.yaml:name" in some DVC versions
                break
    return sorted(stale)


def declared_outputs(stage: dict) -> Iterator[tuple[str, bool]]:
    """``(path, cached)`` for every ``outs`` / ``metrics`` / ``plots`` entry of a ``dvc.yaml`` stage;
    ``cached`` is False for the ``cache: false`` ones."""
    for key in ("outs", "metrics", "plots"):
        for entry in stage.get(key) or []:
            if isinstance(entry, dict):
                (path, opts), = entry.items()
                yield path, not (isinstance(opts, dict) and opts.get("cache") is False)
            else:
                yield entry, True


def stage_outputs(dvc_yaml: dict, names: list[str]) -> list[str]:
    """Every output path of the stages ``names`` in a parsed ``dvc.yaml``."""
    paths = set()
    for name in names:
        stage = dvc_yaml.get("stages", {}).get(name)
        if stage is None:
            raise KeyError(f"dvc.yaml: no stage {name!r} (dvc status reported it); regenerate it: make dvc-yaml")
        paths |= {path for path, _ in declared_outputs(stage)}
    return sorted(paths)


def stale_outputs(root: str | Path = ".", dvc: str = "dvc") -> list[str]:
    """Outputs of the stages of ``root/dvc.yaml`` that ``dvc status`` finds with a file deleted."""
    res = subprocess.run([dvc, "status", "--json"], cwd=root, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"dvc status --json (in {root}) exited {res.returncode}: {res.stderr.strip()[-2000:]}")
    status = json.loads(res.stdout or "{}")
    pipeline = yaml.safe_load((Path(root) / "dvc.yaml").read_text())
    return stage_outputs(pipeline, deleted_stages(status))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnlab.stale", description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="the repository (dvc.yaml and .dvc/)")
    parser.add_argument("--dvc", default="dvc", help="the dvc executable")
    args = parser.parse_args(argv)
    try:
        paths = stale_outputs(args.root, args.dvc)
    except (RuntimeError, KeyError, OSError) as err:
        print(f"cnnlab.stale: {err}", file=sys.stderr)
        return 1
    print("\n".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
