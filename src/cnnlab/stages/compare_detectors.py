"""Stage ``compare_detectors``: one table of every detector of a data set → ``reports/detection/<ds>/compare/``.

``compare.inputs`` lists evaluation folders (Snakemake passes them); empty: those of
``compare.detectors`` under ``reports/detection/<ds>/``. Each row also reads the training run's
``metrics.json`` (``models/detection/<ds>/<detector>/``) for its training time, when it exists.
"""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import DictConfig

from ._app import log, stage, tracker


@stage(config_name="detect")
def main(cfg: DictConfig) -> None:
    from ..detect.compare import compare_detectors

    evals = [Path(p) for p in cfg.compare.inputs] or [Path(cfg.paths.eval).parent / d for d in cfg.compare.detectors]
    runs = [Path(cfg.paths.run).parent / e.name for e in evals]
    out = Path(cfg.paths.compare)
    with tracker("compare_detectors", cfg) as t:
        rows = compare_detectors(evals, runs, out)
        for r in rows:
            # MLflow metric names: letters, digits, _ - . space : / only ("sliding windows (naive)")
            name = re.sub(r"[^A-Za-z0-9_\-. :/]+", "_", r["detector"]).strip("_ ")
            t.log_metrics({f"{name}/map_50": r["map_50"], f"{name}/map_50_95": r["map_50_95"],
                           f"{name}/latency_ms": r["latency_ms_per_image"]})
        t.log_artifact(out / "table.md")
        log.info("compared %d detectors: %s", len(rows), out / "table.md")


if __name__ == "__main__":
    main()
