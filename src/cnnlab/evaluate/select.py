"""Model selection with one optimising and one satisficing metric (the course's advice).

Maximise accuracy subject to latency per image ≤ a budget: among the evaluated models that meet
the budget, pick the most accurate; models over budget are listed but never chosen.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence


def select_model(metrics_files: Sequence[str | Path], latency_budget_ms: float,
                 optimise: str = "accuracy", satisfice: str = "latency_ms_per_image") -> dict[str, Any]:
    """Return ``{"chosen": <file or None>, "candidates": [...], ...}`` for the given budget.

    Raises:
        FileNotFoundError: a metrics file is missing.
        KeyError: a metrics file lacks the optimising or satisficing metric (names the file).
    """
    rows = []
    for f in metrics_files:
        m = json.loads(Path(f).read_text())
        for key in (optimise, satisfice):
            if key not in m:
                raise KeyError(f"{f}: no {key!r} metric (re-run the evaluate stage)")
        rows.append({"metrics_file": str(f), optimise: m[optimise], satisfice: m[satisfice],
                     "meets_budget": m[satisfice] <= latency_budget_ms})
    rows.sort(key=lambda r: (-r[optimise], r[satisfice]))
    ok = [r for r in rows if r["meets_budget"]]
    return {"optimising_metric": optimise, "satisficing_metric": satisfice, "budget": latency_budget_ms,
            "chosen": ok[0]["metrics_file"] if ok else None, "candidates": rows}


def selection_markdown(result: dict[str, Any]) -> str:
    """A readable table of the candidates, the chosen one in bold."""
    o, s = result["optimising_metric"], result["satisficing_metric"]
    lines = [f"# Model selection: max {o} subject to {s} ≤ {result['budget']}", "",
             f"| model (metrics file) | {o} | {s} | meets budget |", "|---|---|---|---|"]
    for r in result["candidates"]:
        name = f"**{r['metrics_file']}**" if r["metrics_file"] == result["chosen"] else r["metrics_file"]
        lines.append(f"| {name} | {r[o]:.4f} | {r[s]:.3f} | {'yes' if r['meets_budget'] else 'no'} |")
    lines += ["", f"Chosen: {result['chosen'] or 'none meets the budget'}", ""]
    return "\n".join(lines)
