"""One DAG, two tools: export the Snakemake workflow to ``dvc.yaml``.

The Snakefile (rules in ``workflow/rules/``) is the single source of truth. This module asks
Snakemake for the full job list of the default target (``snakemake --dry-run --forceall
--printshellcmds``) and writes one DVC stage per job, with the very same command, deps and outs.
``metrics.json`` outputs become DVC ``metrics`` and ``*.png`` outputs DVC (image) ``plots``. The data
files are also declared as DVC's top-level ``plots:`` (:func:`data_plots`): every training task's
per-epoch ``history.csv`` as learning curves (x = epoch), each ``predictions.csv`` as a confusion
matrix, each ``roc.csv`` as a ROC curve; ``dvc plots diff`` overlays them across commits. Outputs that
hold measured timings (every ``metrics.json`` and the ``details.json`` beside it; the benchmark,
selection and face report tables) are ``cache: false``: DVC records their hash in ``dvc.lock`` but
keeps them out of its cache, and they are committed to git with the lock (``.gitignore`` lets them through). Everything else
(data, models, encodings, evaluation reports, plots) is cached and pushed.

The dry run is made with ``--config dvc_template=true``: the train commands then read
``params.yaml`` through DVC's templating (``optim=${train.lenet5.optim}``), so
``dvc exp run -S train.lenet5.lr=0.01`` changes them, and each such key becomes a ``params:``
entry of its stage (``dvc exp show`` lists it).

Usage::

    python -m cnnlab.dag            # rewrite dvc.yaml
    python -m cnnlab.dag --check    # exit 1 if dvc.yaml differs from the Snakefile's DAG
    python -m cnnlab.dag --config overrides=debug=tiny   # any Snakemake --config values
    python -m cnnlab.dag --configfile tiny.yaml          # or an extra config file
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HEADER = ("# GENERATED from the Snakefile by `python -m cnnlab.dag`: do not edit by hand.\n"
          "# tests/test_dag.py fails when this file and the Snakefile disagree.\n")
_FIELDS = ("input", "output", "log", "benchmark", "wildcards")
# outputs with measured timings (latency, ms per face, wall time): not in DVC's cache (fnmatch
# patterns; `*` also matches `/`)
TIMED = ("reports/benchmark/*", "reports/selection/*", "reports/faces/*", "reports/detection/*/compare/*")
# data plots (no timings inside): cached even under TIMED, so `dvc plots diff` finds older revisions
PLOT_DATA = ("/history.csv", "/predictions.csv", "/roc.csv")
_PARAM = re.compile(r"\$\{([A-Za-z0-9_.]+)\}")
# The learning-curve panels of each training rule's history.csv (cnnlab.tasks.callbacks.History):
# panel name → the columns drawn against `epoch`, as the rule's task logs them (`train/…`, `val/…`).
HISTORY_PANELS: dict[str, dict[str, list[str]]] = {
    "train": {"loss": ["train/loss", "val/loss"], "accuracy": ["train/acc", "val/acc"]},
    "finetune": {"loss": ["train/loss", "val/loss"], "accuracy": ["train/acc", "val/acc"]},
    "train_windows": {"loss": ["train/loss", "val/loss"], "accuracy": ["train/acc", "val/acc"]},
    "train_encoder": {"loss": ["train/loss"], "verification": ["val/rank1", "val/eer"]},
    "train_encoder_seed": {"loss": ["train/loss"], "verification": ["val/rank1", "val/eer"]},
    "train_localiser": {"loss": ["train/loss", "val/loss"], "localisation": ["val/localisation_accuracy"]},
    "train_landmarks": {"loss": ["train/loss", "val/loss"], "error": ["val/nme"]},
    "train_detector": {"loss": ["train/loss"], "mAP": ["val/map_50", "val/map_50_95"]},
    "train_segmenter": {"loss": ["train/loss", "val/loss"], "mIoU": ["val/miou"]},
}


@dataclass
class Job:
    """One Snakemake job as the dry run prints it."""

    rule: str
    input: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    benchmark: list[str] = field(default_factory=list)
    wildcards: dict[str, str] = field(default_factory=dict)
    shell: str | None = None

    @property
    def stage_name(self) -> str:
        parts = [f"{k}{v}" if v.isdigit() else v for k, v in self.wildcards.items()]
        return "-".join([self.rule, *parts])


def parse_dry_run(text: str) -> list[Job]:
    """Parse ``snakemake -n -p --forceall`` output into jobs (order of appearance)."""
    jobs: list[Job] = []
    current: Job | None = None
    for line in text.splitlines():
        m = re.match(r"^(?:local)?rule (\S+):$", line)
        if m:
            current = Job(m.group(1))
            jobs.append(current)
            continue
        if current is None:
            continue
        m = re.match(r"^    (\w+): (.*)$", line)
        if m and m.group(1) in _FIELDS:
            key, value = m.groups()
            if key == "wildcards":
                current.wildcards = dict(kv.split("=", 1) for kv in value.split(", "))
            else:
                setattr(current, key, value.split(", "))
        elif line.startswith("Shell command: "):
            cmd = line.removeprefix("Shell command: ")
            current.shell = None if cmd == "None" else cmd
    return [j for j in jobs if j.shell]


def snakemake_jobs(config: list[str] = (), cwd: str | Path = ".", configfile: str | None = None,
                   template: bool = True) -> list[Job]:
    """Run Snakemake's dry run in ``cwd`` and return its jobs.

    Args:
        template: commands as dvc.yaml has them (``${params.yaml key}``); False: as Snakemake runs them.
    """
    cmd = [sys.executable, "-m", "snakemake", "--dry-run", "--forceall", "--printshellcmds", "--cores", "1"]
    if configfile:
        cmd += ["--configfile", configfile]
    cmd += ["--config", f"dvc_template={str(template).lower()}", *config]
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"snakemake dry run failed:\n{res.stdout}\n{res.stderr}")
    return parse_dry_run(res.stdout)


def _uncached(out: str) -> bool:
    """Outputs DVC records but does not cache (committed to git): measured timings, i.e. TIMED
    folders (but their plot data) and every metrics file's ``details.json``."""
    timed = any(fnmatch.fnmatchcase(out, pattern) for pattern in TIMED)
    return (timed and not out.endswith(PLOT_DATA)) or out.endswith("/details.json")


def to_dvc(jobs: list[Job]) -> dict:
    """DVC pipeline dict: one stage per job, same command, deps and outs."""
    stages = {}
    for job in sorted(jobs, key=lambda j: j.stage_name):
        stage: dict = {"cmd": job.shell, "deps": sorted(job.input)}
        params = sorted(set(_PARAM.findall(job.shell)))
        if params:
            stage["params"] = params
        outs = [o for o in job.output if not (o.endswith("metrics.json") or o.endswith(".png"))]
        metrics = [o for o in job.output if o.endswith("metrics.json")]
        plots = [o for o in job.output if o.endswith(".png")]
        if outs:
            stage["outs"] = [{o: {"cache": False}} if _uncached(o) else o for o in outs]
        if metrics:
            stage["metrics"] = [{m: {"cache": False}} for m in metrics]
        if plots:
            stage["plots"] = plots
        stages[job.stage_name] = stage
    plots = data_plots(jobs)
    return {"stages": stages, **({"plots": plots} if plots else {})}


def data_plots(jobs: list[Job]) -> list[dict]:
    """DVC's top-level ``plots:`` of the jobs' data files (CSV), in stage order.

    ``history.csv`` → one line plot per panel of :data:`HISTORY_PANELS` (x = epoch; ``dvc plots diff``
    overlays the revisions), ``predictions.csv`` → the confusion template (x = actual, y =
    predicted), ``roc.csv`` → true against false accept rate.

    Raises:
        ValueError: a rule writes ``history.csv`` but has no entry in :data:`HISTORY_PANELS`.
    """
    plots: list[dict] = []
    for job in sorted(jobs, key=lambda j: j.stage_name):
        for out in job.output:
            if out.endswith("/history.csv"):
                panels = HISTORY_PANELS.get(job.rule)
                if panels is None:
                    raise ValueError(f"rule {job.rule} writes {out}: add its learning-curve columns to "
                                     f"HISTORY_PANELS in {__name__}")
                plots += [{f"{job.stage_name} {panel}": {
                    "x": "epoch", "y": {out: list(columns)}, "template": "linear", "title": f"{job.stage_name}: {panel}",
                    "x_label": "epoch", "y_label": panel}} for panel, columns in panels.items()]
            elif out.endswith("/predictions.csv"):
                plots.append({out: {"template": "confusion", "x": "actual", "y": "predicted",
                                    "title": f"{job.stage_name}: confusion", "x_label": "true class",
                                    "y_label": "predicted class"}})
            elif out.endswith("/roc.csv"):
                plots.append({out: {"template": "roc_by_method", "x": "far", "y": "tar", "title": f"{job.stage_name}: ROC",
                                    "x_label": "false accept rate", "y_label": "true accept rate"}})
    return plots


def render(pipeline: dict) -> str:
    return HEADER + yaml.safe_dump(pipeline, sort_keys=False, width=200)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if dvc.yaml differs instead of writing it")
    parser.add_argument("--config", nargs="*", default=[], help="Snakemake --config KEY=VALUE pairs")
    parser.add_argument("--configfile", help="an extra Snakemake config file merged over workflow/config.yaml")
    parser.add_argument("-o", "--output", default="dvc.yaml")
    args = parser.parse_args(argv)
    text = render(to_dvc(snakemake_jobs(args.config, configfile=args.configfile)))
    out = Path(args.output)
    if args.check:
        if not out.is_file() or out.read_text() != text:
            print(f"{out} differs from the Snakefile's DAG: run `python -m cnnlab.dag`", file=sys.stderr)
            return 1
        print(f"{out} agrees with the Snakefile")
        return 0
    from .io import write_text

    write_text(out, text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
