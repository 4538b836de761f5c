"""Benchmark the default pipeline as a new user meets it: fresh clone, `make run`, then a second clone.

In a temporary folder, with the virtualenv this script runs in (so nothing is installed)::

    python -m cnnlab.bench.pipeline [--cores 2] [--record]

1. ``git clone`` of this repository's HEAD (commit first: the working tree is not used);
2. ``make run`` there, timed: Snakemake runs the DAG, ``dvc commit`` records it in ``dvc.lock``,
   ``snakemake --touch`` puts the mtimes back, ``dvc status`` must be clean, and a no-op
   ``snakemake`` / ``dvc repro`` (timed) must have nothing to do;
3. the committed-lock workflow: ``git add`` of ``dvc.lock`` and the un-cached metrics,
   ``dvc push`` to a scratch remote, a second ``git clone``, ``make pull``: ``dvc status`` clean,
   ``dvc repro`` and ``snakemake -n`` have nothing to do;
4. ``dvc.lock`` compared with the one committed in this repository (if any), stage by stage: which
   outputs differ, and whether they are the ``cache: false`` files that hold timings.

It writes the ``pipeline`` section of docs/BENCHMARKS.md. ``--record`` also copies the run's
``dvc.lock`` and its un-cached metrics files (what a user commits after ``make run``) into this
repository, so that the committed lock is the one a fresh ``make run`` produced.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .report import write_section

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
VENV = BIN.parent
GIT = ["git", "-c", "user.name=cnnlab-bench", "-c", "user.email=bench@cnnlab.invalid"]


def _run(cmd: list[str], cwd: Path, env: dict) -> tuple[float, str]:
    """Run ``cmd``; returns (seconds, stdout+stderr). Raises with the output tail on failure."""
    t = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    out = res.stdout + res.stderr
    if res.returncode:
        raise RuntimeError(f"{' '.join(cmd)} (in {cwd}) exited {res.returncode}:\n{out[-4000:]}")
    return time.perf_counter() - t, out


def _env(root: Path) -> dict:
    """The clone's own sources first (the venv's editable install points at this repository)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "CNNLAB_CONF",
                                                            "CNNLAB_PIPELINE_RUN")}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(root / "src")
    return env


def _make(target: str, root: Path, env: dict, *variables: str) -> tuple[float, str]:
    """``make <target>`` with this venv as ``.venv`` and its install step marked as done."""
    return _run(["make", f"VENV={VENV}", "-o", str(VENV / ".installed"), target, *variables], root, env)


def _clean(out: str) -> bool:
    return "up to date" in out.lower() or "no changes" in out.lower()


def _lock_stages(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text()).get("stages", {}) if path.is_file() else {}


def _entries(stage: dict) -> dict:
    """A dvc.lock stage as {dep/out path: (md5, size, nfiles), "cmd": ..., "params": ...}."""
    files = {e["path"]: (e.get("md5"), e.get("size"), e.get("nfiles"))
             for key in ("deps", "outs") for e in stage.get(key, [])}
    return files | {"cmd": stage.get("cmd"), "params": json.dumps(stage.get("params"))}


def _use_remote(root: Path, remote: Path) -> None:
    """Point the clone's DVC remote ``local`` at ``remote`` (``.dvc/config.local``, ignored by git)."""
    (root / ".dvc/config.local").write_text(f"['remote \"local\"']\n    url = {remote}\n")


def compare_locks(new: Path, old: Path, uncached: set[str]) -> dict:
    """Stage-by-stage comparison of two dvc.lock files.

    Returns:
        ``{"same": [...], "timings_only": {stage: [paths]}, "differ": {stage: [paths]}, "missing": [...]}``:
        a stage is ``timings_only`` when every differing entry is an un-cached (``cache: false``)
        file, which is where measured timings live.
    """
    a, b = _lock_stages(new), _lock_stages(old)
    result: dict = {"same": [], "timings_only": {}, "differ": {}, "missing": sorted(set(a) ^ set(b))}
    for stage in sorted(set(a) & set(b)):
        ea, eb = _entries(a[stage]), _entries(b[stage])
        diff = sorted(k for k in set(ea) | set(eb) if ea.get(k) != eb.get(k))
        if not diff:
            result["same"].append(stage)
        elif all(k in uncached for k in diff):
            result["timings_only"][stage] = diff
        else:
            result["differ"][stage] = diff
    return result


def uncached_outs(dvc_yaml: Path) -> set[str]:
    """Paths that dvc.yaml declares with ``cache: false``."""
    import yaml

    from ..stale import declared_outputs

    stages = (yaml.safe_load(dvc_yaml.read_text()).get("stages") or {}).values()
    return {path for stage in stages for path, cached in declared_outputs(stage) if not cached}


def measure(cores: int, work: Path) -> tuple[dict, Path]:
    """Run steps 1-4 of the module docstring in ``work``; returns the figures and the first clone."""
    load_before = os.getloadavg()[1]
    out: dict = {"commit": _run(["git", "rev-parse", "--short", "HEAD"], REPO, dict(os.environ))[1].strip()}
    first, second, remote = work / "clone1", work / "clone2", work / "remote"
    env = _env(first)
    _run(["git", "clone", "-q", str(REPO), str(first)], work, env)
    _use_remote(first, remote)
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out["make_run_s"], log = _make("run", first, env, f"CORES={cores}")
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out["make_run_cpu_s"] = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    out["load_before"] = load_before
    (work / "make_run.log").write_text(log)
    try:
        out["status_clean"] = _clean(_run([str(BIN / "dvc"), "status"], first, env)[1])
        noop_s, noop = _run([str(BIN / "snakemake"), "--cores", str(cores)], first, env)
        out["snakemake_noop"] = ("Nothing to be done" in noop, noop_s)
        repro_s, repro = _run([str(BIN / "dvc"), "repro"], first, env)
        out["dvc_noop"] = ("Running stage" not in repro, repro_s)
        out["jobs"] = sorted(((f.stem, float(f.read_text().splitlines()[1].split("\t")[0]))
                              for f in (first / "logs/bench").glob("*.tsv")), key=lambda x: -x[1])
        out["results"] = _results(first)

        uncached = uncached_outs(first / "dvc.yaml")
        committed = _run(["git", "ls-files", "dvc.lock"], REPO, dict(os.environ))[1].strip()
        out["lock_vs_committed"] = compare_locks(first / "dvc.lock", REPO / "dvc.lock", uncached) if committed else None
        # The committed-lock workflow: commit the lock and the un-cached files, push, restore in a second clone.
        _run(["git", "add", "-A"], first, env)
        recorded = _run(["git", "diff", "--cached", "--name-only"], first, env)[1].split()
        out["recorded"] = recorded
        _run([*GIT, "commit", "-qm", "make run"], first, env)
        out["push_s"] = _run([str(BIN / "dvc"), "push", "-q"], first, env)[0]
        env2 = _env(second)
        _run(["git", "clone", "-q", str(first), str(second)], work, env2)
        _use_remote(second, remote)
        out["pull_s"] = _make("pull", second, env2)[0]
        out["clone2_status_clean"] = _clean(_run([str(BIN / "dvc"), "status"], second, env2)[1])
        out["clone2_repro_noop"] = "Running stage" not in _run([str(BIN / "dvc"), "repro"], second, env2)[1]
        smk = _run([str(BIN / "snakemake"), "-n", "--cores", "1"], second, env2)[1]
        out["clone2_snakemake_noop"] = "Nothing to be done" in smk
    except RuntimeError as err:   # a later step failed: report it beside what was measured
        out["error"] = str(err)[-3000:]
    return out, first


def _results(root: Path) -> dict:
    """Headline figures of the run, read from its outputs."""
    from ..config import compose

    res: dict = {}
    sel = root / compose(conf=root / "conf").select.out / "selection.json"
    if sel.is_file():
        s = json.loads(sel.read_text())
        res["select"] = s
    res["lenet5_test_acc"] = {p.parent.name: json.loads(p.read_text()).get("accuracy")
                              for p in sorted((root / "reports/eval/digits/lenet5").glob("seed*/metrics.json"))}
    comp = root / compose(conf=root / "conf", config_name="faces").face.paths.comparison / "comparison.json"
    if comp.is_file():
        res["faces"] = json.loads(comp.read_text()).get("rows", [])
    return res


def _chosen(sel: dict) -> str:
    chosen = sel.get("chosen")
    if not chosen:
        return "no model (none within the latency budget)"
    lo, hi = chosen["test_interval_95"]
    return (f"`{chosen['checkpoint']}`: test accuracy {chosen['test_accuracy']:.2%} "
            f"({chosen['test_n'] - chosen['test_errors']} of {chosen['test_n']}, 95 % interval {lo:.2%}–{hi:.2%})")


def render(m: dict, cores: int) -> str:
    if "error" in m:
        return (f"## Default pipeline (`make run`) from a fresh clone of {m['commit']}\n\n"
                f"`make run` took {m['make_run_s'] / 60:.1f} min, then a step failed:\n\n```\n{m['error']}\n```\n")
    yes = {True: "yes", False: "**no**"}
    rows = [
        f"| `make run` on a fresh clone (`snakemake --cores {cores}`, `dvc commit`, `snakemake --touch`, "
        f"`dvc status`) | ≤ 12 min | {m['make_run_s'] / 60:.1f} min (load average {m['load_before']:.1f} "
        f"before it) |",
        f"| CPU time of that `make run`, all processes, ÷ {cores} cores: its wall time on an otherwise idle "
        f"machine if the DAG kept every core busy | ≤ 12 min | {m['make_run_cpu_s'] / 60:.1f} CPU-min ÷ {cores} "
        f"= {m['make_run_cpu_s'] / 60 / cores:.1f} min |",
        f"| `dvc status` clean after `make run` | yes | {yes[m['status_clean']]} |",
        f"| no-op `snakemake --cores {cores}` after it | nothing to do | {yes[m['snakemake_noop'][0]]}, "
        f"{m['snakemake_noop'][1]:.1f} s |",
        f"| no-op `dvc repro` after it | nothing to do | {yes[m['dvc_noop'][0]]}, {m['dvc_noop'][1]:.1f} s |",
        f"| `dvc push` (scratch remote) | — | {m['push_s']:.1f} s |",
        f"| second clone, `make pull` | — | {m['pull_s']:.1f} s |",
        f"| … then `dvc status` clean | yes | {yes[m['clone2_status_clean']]} |",
        f"| … then `dvc repro` has nothing to do | yes | {yes[m['clone2_repro_noop']]} |",
        f"| … then `snakemake -n` has nothing to do | yes | {yes[m['clone2_snakemake_noop']]} |",
    ]
    r = m["results"]
    lines = [f"## Default pipeline (`make run`) from a fresh clone of {m['commit']}", "",
             "| measure | goal | measured |", "|---|---|---|", *rows, ""]
    if "select" in r:
        lines.append(f"`select` chose {_chosen(r['select'])} (on validation accuracy under its latency budget).")
    if r.get("lenet5_test_acc"):
        lines.append("LeNet-5 test accuracy per seed: " + ", ".join(
            f"{k} {v:.2%}" for k, v in r["lenet5_test_acc"].items() if isinstance(v, float)) + ".")
    if r.get("faces"):
        lines.append("Faces (`reports/faces/comparison.md`): " + "; ".join(
            f"{x.get('method', x.get('key'))} rank-1 {x['rank1']:.3f}, EER {x['eer']:.3f}" for x in r["faces"]) + ".")
    lines += ["", f"Longest jobs (seconds, Snakemake `benchmark:` files; {cores} cores shared by parallel jobs): "
              + ", ".join(f"{name} {sec:.0f}" for name, sec in m["jobs"][:12]) + "."]
    cmp = m["lock_vs_committed"]
    lines.append("")
    if cmp is None:
        lines.append("No `dvc.lock` was committed in this repository to compare with.")
    else:
        lines.append(f"Its `dvc.lock` against the committed one: {len(cmp['same'])} stages identical; "
                     f"{len(cmp['timings_only'])} differ only in un-cached files that hold timings "
                     f"({', '.join(sorted(cmp['timings_only'])) or 'none'}); "
                     f"{len(cmp['differ'])} differ elsewhere ({', '.join(sorted(cmp['differ'])) or 'none'})"
                     + (f"; stages in one lock only: {', '.join(cmp['missing'])}" if cmp["missing"] else "") + ".")
    lines.append(f"Committed after the run, as a user would: {len(m['recorded'])} files (`dvc.lock` and the "
                 f"`cache: false` outputs).")
    return "\n".join(lines) + "\n"


def record(first: Path, recorded: list[str]) -> None:
    """Copy the run's dvc.lock and un-cached outputs into this repository (atomically, file by file)."""
    for rel in recorded:
        src, dst = first / rel, REPO / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--record", action="store_true",
                        help="copy the run's dvc.lock and un-cached outputs into this repository")
    parser.add_argument("--note", default="", help="a sentence added to the section (e.g. the machine was shared)")
    parser.add_argument("--work", type=Path, help="keep the clones here (default: a temporary folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        m, first = measure(args.cores, work)
        (work / "pipeline.json").write_text(json.dumps(m, indent=1, default=str))
        body = render(m, args.cores) + (f"\n{args.note}\n" if args.note else "")
        print(body)
        if args.record:
            record(first, m.get("recorded", []))
    write_section("pipeline", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
