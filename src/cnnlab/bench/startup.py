"""Start-up cost of every pipeline stage and of the ``cnnlab`` console script, on CPU.

For each stage ``python -m cnnlab.stages.<stage>``, in fresh interpreters run from the repository
root:

- **--help**: wall time of ``--help`` (Python, Hydra composing the config, the stage module's own
  imports), the median of ``--repeats`` runs;
- **work imports**: what the stage pays before its first line of work: importing the stage module,
  every module it imports (found in its source, function-level imports included) and ``mlflow``
  (every stage records an MLflow run), measured with ``python -X importtime``; the heaviest
  third-party packages it loads are listed.

``cnnlab --help`` is timed the same way. With ``--before-src DIR`` (another copy of ``src/``, e.g.
from ``git worktree add``) every figure is also measured with ``PYTHONPATH=DIR``, side by side;
the two trees take turns run by run, so a change in the machine's load hits both alike.

    python -m cnnlab.bench.startup --repeats 3 --before-src /tmp/before/src

Writes the ``startup`` section of docs/BENCHMARKS.md (``--output`` to write elsewhere).
"""

from __future__ import annotations

import argparse
import ast
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from cnnlab.bench.report import DEFAULT_PATH, bench_command, write_section

HEAVY = ("lightning", "torchmetrics", "mlflow", "torch", "torchvision", "sklearn", "matplotlib")


@dataclass
class Cost:
    """One entry point's figures under one source tree (seconds)."""

    help_s: float
    import_s: float | None = None
    packages: dict[str, float] = field(default_factory=dict)  # third-party package → cumulative s


def stage_names(src: Path) -> list[str]:
    """The stage modules under ``src/cnnlab/stages`` (``_``-prefixed helpers excluded)."""
    return sorted(p.stem for p in (src / "cnnlab" / "stages").glob("*.py") if not p.stem.startswith("_"))


def work_modules(stage_file: Path, package: str = "cnnlab.stages") -> list[str]:
    """Absolute names of every module ``stage_file`` imports, at any level of its code."""
    names = []
    for node in ast.walk(ast.parse(stage_file.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module) if p)
            names.append(module)
    return sorted(set(names) - {"__future__"})


def source_texts(tree: Path, name: str) -> dict[str, str]:
    """The source of stage ``name`` and of the cnnlab modules it imports, under ``tree``."""
    texts = {}
    for module in [f"cnnlab.stages.{name}", *work_modules(tree / "cnnlab" / "stages" / f"{name}.py")]:
        path = tree.joinpath(*module.split("."))
        for file in (path.with_suffix(".py"), path / "__init__.py"):
            if module.startswith("cnnlab") and file.is_file():
                texts[module] = file.read_text()
    return texts


def parse_importtime(stderr: str) -> tuple[float, dict[str, float]]:
    """Total import seconds (top-level entries) and each top-level package's cumulative seconds
    from ``-X importtime`` output (a package appears once: where it was first imported)."""
    total, packages = 0.0, {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name_field = line.split("|")
        name = name_field.strip()
        seconds = int(cumulative) / 1e6
        if len(name_field) - len(name_field.lstrip()) == 1:  # depth 0: imported by the -c code itself
            total += seconds
        if "." not in name and not name.startswith("_"):
            packages[name] = max(packages.get(name, 0.0), seconds)
    return total, packages


def _env(src: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = f"{src}{os.pathsep}{env.get('PYTHONPATH', '')}"
    return env


CLI = "cnnlab --help"


def _command(name: str) -> list[str]:
    if name == CLI:
        return [sys.executable, "-c", "import sys; from cnnlab.cli import main; sys.argv[0] = 'cnnlab'; main(['--help'])"]
    return [sys.executable, "-m", f"cnnlab.stages.{name}", "--help"]


def wall(cmd: list[str], src: Path | None) -> float:
    """Wall time of one run of ``cmd`` (it must succeed)."""
    start = time.perf_counter()
    subprocess.run(cmd, env=_env(src), check=True, capture_output=True)
    return time.perf_counter() - start


def import_cost(modules: list[str], src: Path | None) -> tuple[float, dict[str, float]]:
    """Total import time of ``modules`` in a fresh interpreter, and the packages it loaded."""
    code = "; ".join(f"import {m}" for m in modules)
    res = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=_env(src), check=True,
                         capture_output=True, text=True)
    return parse_importtime(res.stderr)


def measure(names: list[str], trees: list[tuple[Path | None, Path]], repeats: int) -> list[dict[str, Cost]]:
    """One ``{entry point: Cost}`` (medians) per tree ``(PYTHONPATH source or None, source tree)``.

    The trees take turns run by run, the order flipping every repetition, so a change in the
    machine's load hits them alike.
    """
    results: list[dict[str, Cost]] = [{} for _ in trees]
    for name in names:
        helps: list[list[float]] = [[] for _ in trees]
        imports: list[list[tuple[float, dict]]] = [[] for _ in trees]
        for rep in range(repeats):
            for i in (range(len(trees)) if rep % 2 == 0 else reversed(range(len(trees)))):
                src, tree = trees[i]
                if name != CLI and name not in stage_names(tree):
                    continue
                helps[i].append(wall(_command(name), src))
                if name != CLI:
                    modules = [f"cnnlab.stages.{name}", *work_modules(tree / "cnnlab" / "stages" / f"{name}.py"),
                               "mlflow"]
                    imports[i].append(import_cost(modules, src))
        for i, runs in enumerate(imports):
            if helps[i]:
                runs.sort(key=lambda r: r[0])
                results[i][name] = Cost(statistics.median(helps[i]), *(runs[len(runs) // 2] if runs else ()))
        print(name + ": " + "; ".join(f"--help {r[name].help_s:.2f} s" + (f", work imports {r[name].import_s:.2f} s"
                                      if r[name].import_s is not None else "") for r in results if name in r),
              flush=True)
    return results


def _heavy(cost: Cost) -> str:
    loaded = sorted(((s, p) for p, s in cost.packages.items() if p in HEAVY), reverse=True)
    return ", ".join(f"{p} {s:.1f}" for s, p in loaded) or "none"


def format_table(after: dict[str, Cost], before: dict[str, Cost] | None, repeats: int,
                 changed: set[str] = frozenset(), load: tuple[float, float] | None = None) -> str:
    """Markdown section body, starting with its ``## `` title; ``changed`` entries are marked.
    ``load``: the 1-minute load average at the start and at the end of the measurements."""
    load = load or (os.getloadavg()[0],) * 2
    cols = ["--help (s)", "work imports (s)"]
    head = [f"{c} {w}" for c in cols for w in ("before", "after")] if before else cols
    lines = [
        "## Start-up cost of the stages (CPU)",
        "",
        "A fresh interpreter per run, from the repository root; the figures are medians of "
        f"{repeats} runs. **--help**: `python -m cnnlab.stages.<stage> --help` (Python + Hydra + the stage "
        "module's own imports). **work imports**: "
        "importing the stage, every module its code imports (function-level ones included) and `mlflow`, "
        "from `python -X importtime` (what the stage pays before its first line of work). **heavy packages**: "
        "cumulative import seconds of the big third-party packages that work import loads. "
        f"Load average {load[0]:.1f} at the start and {load[1]:.1f} at the end, on {os.cpu_count()} cores "
        "(other processes on these cores inflate every figure).",
        *(["", "Before/after: **(changed)** marks the entry points whose code (the stage module or a cnnlab "
            "module it imports) differs between the two trees; for the others the two columns run the same "
            "code, so their difference is measurement noise. The two trees took turns run by run."]
          if before else []),
        "",
        "| entry point | " + " | ".join(head) + " | heavy packages loaded (s) |",
        "|---|" + "---:|" * len(head) + "---|",
    ]
    for name, cost in after.items():
        pairs = [(cost.help_s, before[name].help_s if before and name in before else None),
                 (cost.import_s, before[name].import_s if before and name in before else None)]
        cells = []
        for now, then in pairs:
            cells += ([_fmt(then)] if before else []) + [_fmt(now)]
        mark = " (changed)" if name in changed else ""
        lines.append(f"| `{name}`{mark} | " + " | ".join(cells) + f" | {_heavy(cost) if cost.packages else ''} |")
    return "\n".join(lines)


def _fmt(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnlab.bench.startup", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (the median is kept)")
    parser.add_argument("--stages", nargs="+", help="stage names (default: every stage)")
    parser.add_argument("--before-src", type=Path, help="another src/ folder to measure side by side")
    parser.add_argument("--output", type=Path, default=DEFAULT_PATH, help="benchmarks markdown file")
    args = parser.parse_args(argv)
    import cnnlab

    tree = Path(cnnlab.__file__).resolve().parents[1]
    stages = args.stages or stage_names(tree)
    trees = [(None, tree)]
    if args.before_src:
        old = args.before_src.resolve()
        trees.insert(0, (old, old))
    load_start = os.getloadavg()[0]
    costs = measure([*stages, CLI], trees, args.repeats)
    after, before = costs[-1], (costs[0] if args.before_src else None)
    changed = {s for s in stages if before and s in before and source_texts(trees[0][1], s) != source_texts(tree, s)}
    table = format_table(after, before, args.repeats, changed, (load_start, os.getloadavg()[0]))
    print(table)
    command = bench_command("cnnlab.bench.startup", argv)
    write_section("startup", table, command=command, path=args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
