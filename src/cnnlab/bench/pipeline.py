"""Benchmark the default pipeline: full-run wall time, no-op reruns, LeNet-5 accuracy.

Runs in a scratch copy of the repository (nothing in the working tree is touched)::

    python -m cnnlab.bench.pipeline [--cores 2]

and writes the ``pipeline`` section of docs/BENCHMARKS.md. The tools' own start-up is measured
in the same run on a one-rule workflow, so the no-op overhead is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .report import write_section

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
_SKIP = {".venv", ".git", ".snakemake", ".dvc", "mlruns", "__pycache__", ".pytest_cache", "prepared", "augmented",
         "aligned", "encodings", "models", "reports"}


def _timed(cmd: list[str], cwd: Path, env: dict) -> float:
    t = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return time.perf_counter() - t


def _copy(dst: Path) -> Path:
    def ignore(d, names):
        skip = {n for n in names if n in _SKIP or n.endswith(".egg-info") or n.startswith("mlflow.db")}
        return skip | ({n for n in names if n.endswith(".log") or n == "bench"} if Path(d).name == "logs" else set())

    shutil.copytree(REPO, dst, ignore=ignore)
    return dst


def _git_dvc_init(root: Path, env: dict) -> None:
    dvc_init = [] if (root / ".dvc").is_dir() else [[str(BIN / "dvc"), "init", "-q"]]   # the repo is one already
    for cmd in (["git", "init", "-q"], *dvc_init, ["git", "add", "-A"],
                ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "bench"]):
        _timed(cmd, root, env)


def measure(cores: int) -> dict:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
        repo = _copy(tmp / "repo")
        smk = [str(BIN / "snakemake"), "--cores", str(cores)]
        out = {"full_run_s": _timed(smk, repo, env)}
        out["snakemake_noop_s"] = min(_timed(smk, repo, env) for _ in range(3))
        _git_dvc_init(repo, env)
        _timed([str(BIN / "dvc"), "commit", "-f", "-q"], repo, env)  # record the outputs Snakemake made
        out["dvc_noop_s"] = min(_timed([str(BIN / "dvc"), "repro"], repo, env) for _ in range(3))
        trivial = tmp / "trivial"
        trivial.mkdir()
        (trivial / "Snakefile").write_text('rule a:\n    output: "a"\n    shell: "touch {output}"\n')
        (trivial / "dvc.yaml").write_text("stages:\n  a:\n    cmd: touch a\n    outs: [a]\n")
        _git_dvc_init(trivial, env)
        _timed(smk, trivial, env)
        _timed([str(BIN / "dvc"), "repro", "-q"], trivial, env)
        out["snakemake_trivial_noop_s"] = min(_timed(smk, trivial, env) for _ in range(3))
        out["dvc_trivial_noop_s"] = min(_timed([str(BIN / "dvc"), "repro"], trivial, env) for _ in range(3))
        out["lenet5_test_acc"] = {p.parent.name: json.loads(p.read_text())["accuracy"]
                                  for p in sorted((repo / "reports/eval/digits/lenet5").glob("seed*/metrics.json"))}
        from cnnlab.stages._app import compose

        comparison = Path(compose(conf=repo / "conf", config_name="faces").face.paths.comparison) / "comparison.json"
        out["faces"] = json.loads((repo / comparison).read_text())["rows"]
        out["jobs"] = sorted(((f.stem, float(f.read_text().splitlines()[1].split("\t")[0]))
                              for f in (repo / "logs/bench").glob("*.tsv")), key=lambda x: -x[1])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args(argv)
    m = measure(args.cores)
    body = f"""## Default pipeline (`make run`)

| measure | goal | measured |
|---|---|---|
| full default pipeline, `snakemake --cores {args.cores}`, after install | ≤ 10 min | {m['full_run_s'] / 60:.1f} min |
| no-op rerun of `snakemake` (best of 3) | ≤ tool + 3 s | {m['snakemake_noop_s']:.1f} s (one-rule workflow: {m['snakemake_trivial_noop_s']:.1f} s, overhead {m['snakemake_noop_s'] - m['snakemake_trivial_noop_s']:+.1f} s) |
| no-op rerun of `dvc repro` (best of 3) | ≤ tool + 3 s | {m['dvc_noop_s']:.1f} s (one-stage pipeline: {m['dvc_trivial_noop_s']:.1f} s, overhead {m['dvc_noop_s'] - m['dvc_trivial_noop_s']:+.1f} s) |
| LeNet-5 test accuracy on digits (270 test images), {", ".join(m['lenet5_test_acc'])} | ≥ 98.5 % | {", ".join(f"{a:.2%}" for a in m['lenet5_test_acc'].values())} |

Faces in the same run (`reports/faces/comparison.md`, the 4 test people of the identity split):
{"; ".join(f"{r['method']} rank-1 {r['rank1']:.3f}, EER {r['eer']:.3f}" for r in m['faces'])}.

Longest jobs (seconds, from Snakemake's `benchmark:` files; {args.cores} cores shared by parallel jobs):
{", ".join(f"{name} {sec:.0f}" for name, sec in m['jobs'][:10])}.
"""
    print(body)
    write_section("pipeline", body, command=f"python -m cnnlab.bench.pipeline --cores {args.cores}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
