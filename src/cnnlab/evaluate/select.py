"""Model selection with one optimising and one satisficing metric (the course's advice).

Maximise **validation** accuracy subject to latency per image ≤ a budget: among the evaluated
models that meet the budget, pick the most accurate on the dev set; models over budget are listed
but never chosen. The test set is touched once, for the chosen model only: its test accuracy is
the headline, with its error count and a 95 % Wilson interval (a few test images are a few
tenths of a percent here; the interval says how much a difference means).

Latency is measured here, not read from the evaluations (which ran beside other jobs): one
pinned CPU thread, batch 1, the median of ``repeats`` timed calls after a warm-up.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:  # torch is imported where latency is measured: `select --help` stays light
    import torch


def pinned_latency_ms(model: "torch.nn.Module", x: "torch.Tensor", repeats: int = 30, warmup: int = 3) -> float:
    """Median ms of ``model(x)`` on one torch thread, this process pinned to one CPU."""
    import torch

    threads = torch.get_num_threads()
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    try:
        torch.set_num_threads(1)
        if affinity:
            os.sched_setaffinity(0, {min(affinity)})
        with torch.inference_mode():
            for _ in range(warmup):
                model(x)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
        if affinity:
            os.sched_setaffinity(0, affinity)
    return 1000.0 * statistics.median(times)


def checkpoint_latency_ms(ckpt: str | Path, repeats: int = 30) -> float:
    """:func:`pinned_latency_ms` of a cnnlab classifier checkpoint on one image of its input size."""
    import torch

    from ..tasks.classifier import load_checkpoint

    model, hp = load_checkpoint(ckpt)
    model.eval()
    return pinned_latency_ms(model, torch.zeros(1, hp["in_chans"], *hp["input_size"]), repeats)


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion ``correct / n``."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def select_model(metrics_files: Sequence[str | Path], checkpoints: Sequence[str | Path], latency_budget_ms: float,
                 latency: Callable[[str | Path], float] = checkpoint_latency_ms,
                 optimise: str = "val_accuracy") -> dict[str, Any]:
    """Choose among evaluated checkpoints; ``metrics_files[i]`` evaluates ``checkpoints[i]``.

    Returns:
        ``{"chosen": {...} | None, "candidates": [...], ...}``. Candidates carry validation
        accuracy and measured latency only; ``chosen`` adds the test figures of that model.

    Raises:
        FileNotFoundError: a metrics file or checkpoint is missing.
        KeyError: a metrics file lacks the optimising metric (names the file).
        ValueError: the two lists differ in length.
    """
    if len(metrics_files) != len(checkpoints):
        raise ValueError(f"select.metrics has {len(metrics_files)} files but select.checkpoints "
                         f"{len(checkpoints)}: pass one checkpoint per evaluation")
    rows, tests = [], {}
    for f, ckpt in zip(metrics_files, checkpoints):
        m = json.loads(Path(f).read_text())
        if optimise not in m:
            raise KeyError(f"{f}: no {optimise!r} metric (re-run the evaluate stage, which scores the val split)")
        if not Path(ckpt).is_file():
            raise FileNotFoundError(f"{ckpt}: no such checkpoint (select.checkpoints)")
        rows.append({"metrics_file": str(f), "checkpoint": str(ckpt), optimise: m[optimise],
                     "val_n": m.get("val_n"), "latency_ms": round(latency(ckpt), 4)})
        tests[str(f)] = m
    for r in rows:
        r["meets_budget"] = r["latency_ms"] <= latency_budget_ms
    rows.sort(key=lambda r: (-r[optimise], r["latency_ms"]))
    ok = [r for r in rows if r["meets_budget"]]
    chosen = None
    if ok:
        m = tests[ok[0]["metrics_file"]]
        correct = m["n"] - m["errors"]
        lo, hi = wilson_interval(correct, m["n"])
        chosen = {**ok[0], "test_accuracy": m["accuracy"], "test_n": m["n"], "test_errors": m["errors"],
                  "test_interval_95": [round(lo, 4), round(hi, 4)]}
    return {"optimising_metric": optimise, "satisficing_metric": "latency_ms", "budget_ms": latency_budget_ms,
            "chosen": chosen, "candidates": rows}


def selection_markdown(result: dict[str, Any]) -> str:
    """The candidates (validation accuracy, latency) and the chosen model's test score."""
    o = result["optimising_metric"]
    lines = [f"# Model selection: max {o} subject to latency ≤ {result['budget_ms']} ms per image", "",
             "Latency: batch 1, one pinned CPU thread, median of repeated calls. Candidates are ranked on the "
             "validation split; the test split is scored for the chosen model only.", "",
             f"| checkpoint | {o} | latency (ms) | meets budget |", "|---|---:|---:|---|"]
    chosen = result["chosen"]
    for r in result["candidates"]:
        name = f"**{r['checkpoint']}**" if chosen and r["checkpoint"] == chosen["checkpoint"] else r["checkpoint"]
        lines.append(f"| {name} | {r[o]:.4f} (of {r['val_n']}) | {r['latency_ms']:.3f} | "
                     f"{'yes' if r['meets_budget'] else 'no'} |")
    if chosen:
        lo, hi = chosen["test_interval_95"]
        lines += ["", f"Chosen: {chosen['checkpoint']}: test accuracy {chosen['test_accuracy']:.4f} "
                      f"({chosen['test_n'] - chosen['test_errors']} of {chosen['test_n']} correct, "
                      f"95 % interval {lo:.4f}–{hi:.4f}), {chosen['latency_ms']:.3f} ms per image.", ""]
    else:
        lines += ["", "Chosen: none meets the budget.", ""]
    return "\n".join(lines)
