"""The comparison of fine-tuning runs: test accuracy per strategy and images per class."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ...io import atomic_path


_ORDER = {s: i for i, s in enumerate(("scratch", "head", "partial", "gradual", "full"))}


def collect_runs(root: str | Path, model: str = "*") -> list[dict[str, Any]]:
    """Every fine-tuning ``details.json`` (its metrics with strategy and source) of ``model`` (a glob) under
    ``root`` (``models/<target ds>``)."""
    return [json.loads(p.read_text()) for p in sorted(Path(root).glob(f"{model}-ft-*/**/details.json"))]


def comparison_table(runs: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """Test accuracy per strategy and images per class (mean over seeds), as rows and markdown.

    Returns:
        ``(rows, markdown)``: rows are ``{"strategy", "shots", "test_acc", "runs"}``; the markdown
        has one row per strategy and one column per number of images per class.
    """
    cells: dict[tuple[str, int], list[float]] = {}
    for r in runs:
        cells.setdefault((r["strategy"], r["shots"]), []).append(r["test_acc"])
    order = sorted(cells, key=lambda c: (_ORDER.get(c[0], len(_ORDER)), c[1] or 0))
    rows = [{"strategy": s, "shots": k, "test_acc": float(np.mean(cells[s, k])), "runs": len(cells[s, k])}
            for s, k in order]
    shots = sorted({k for _, k in order}, key=lambda k: k or 0)
    lines = ["| strategy | " + " | ".join(f"{k or 'all'} / class" for k in shots) + " |",
             "|---|" + "---:|" * len(shots)]
    for s in dict.fromkeys(s for s, _ in order):
        lines.append(f"| {s} | " + " | ".join(f"{np.mean(cells[s, k]):.1%}" if (s, k) in cells else "–"
                                               for k in shots) + " |")
    return rows, "\n".join(lines) + "\n"


def write_comparison(root: str | Path, out_dir: str | Path, model: str = "*") -> tuple[list[dict[str, Any]], str]:
    """Compare ``model``'s runs under ``root``: write ``table.md`` and ``comparison.json`` into ``out_dir``."""
    rows, table = comparison_table(collect_runs(root, model))
    if not rows:
        raise FileNotFoundError(f"no fine-tuning details.json under {root}/{model}-ft-*/")
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        (tmp / "table.md").write_text(table)
        (tmp / "comparison.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows, table
