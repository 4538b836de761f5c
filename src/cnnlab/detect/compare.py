"""One table of every detector evaluated on a data set: mAP, speed, size, training time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from ..data.images import DataError
from ..io import write_json, write_text

COLUMNS = ("detector", "mAP@0.5", "mAP@[.5:.95]", "ms / image (CPU)", "parameters", "training s")


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics (run evaluate_detector first)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not JSON ({err})") from None


def compare_rows(evals: Sequence[str | Path], runs: Sequence[str | Path | None]) -> list[dict[str, Any]]:
    """A row per detector from its evaluation folder and (optionally) its training run folder.

    Raises:
        FileNotFoundError: an evaluation folder without metrics.json.
        DataError: a metrics.json without ``map_50``, ``map_50_95`` or ``latency_ms_per_image``.
    """
    rows = []
    for ev, run in zip(evals, runs):
        m = _read(Path(ev) / "metrics.json")
        missing = [k for k in ("map_50", "map_50_95", "latency_ms_per_image") if k not in m]
        if missing:
            raise DataError(f"{Path(ev) / 'metrics.json'}: missing {missing}")
        t = _read(Path(run) / "metrics.json") if run and (Path(run) / "metrics.json").is_file() else {}
        row = {"detector": m.get("detector") or Path(ev).name, "map_50": m["map_50"], "map_50_95": m["map_50_95"],
               "latency_ms_per_image": m["latency_ms_per_image"], "num_params": m.get("num_params", t.get("num_params")),
               "train_seconds": t.get("train_seconds"), "eval": str(ev)}
        if "naive_ms_per_image" in m:  # issue 16's sliding windows: the same detections, two implementations
            rows.append({**row, "detector": "sliding windows (naive)", "latency_ms_per_image": m["naive_ms_per_image"]})
            row["detector"] = "sliding windows (convolutional)"
        rows.append(row)
    return rows


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    def fmt(v, spec):
        return "–" if v is None else format(v, spec)

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append(f"| {r['detector']} | {fmt(r['map_50'], '.3f')} | {fmt(r['map_50_95'], '.3f')} | "
                     f"{fmt(r['latency_ms_per_image'], '.1f')} | {fmt(r['num_params'], ',')} | "
                     f"{fmt(r['train_seconds'], '.0f')} |")
    return "\n".join(lines) + "\n"


def compare_detectors(evals: Sequence[str | Path], runs: Sequence[str | Path | None], out: str | Path) -> list[dict]:
    """Write ``<out>/table.md`` and ``<out>/metrics.json`` (each row's numbers under its detector's
    name); returns the rows."""
    rows = compare_rows(evals, runs)
    out = Path(out)
    write_json(out / "metrics.json", {r["detector"]: {k: v for k, v in r.items() if isinstance(v, (int, float))}
                                      for r in rows})
    write_text(out / "table.md", table(rows))
    return rows
