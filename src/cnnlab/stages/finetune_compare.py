"""Stage ``finetune_compare``: every fine-tuning run on a target → one table and one MLflow run.

Reads ``models/<target>/<model>-ft-*/shots<k>/seed<n>/details.json`` and writes
``reports/finetune/<target>/{table.md, comparison.json}``: test accuracy per strategy (and the
from-scratch baseline) per number of images per class.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ._app import done, log, stage, tracker


@stage
def main(cfg: DictConfig) -> None:
    from ..tasks.finetune import write_comparison

    out = Path("reports/finetune") / cfg.data.name
    with tracker("finetune_compare", cfg, model=cfg.model.name) as t:
        rows, table = write_comparison(Path("models") / cfg.data.name, out, model=cfg.model.name)
        log.info("fine-tuning comparison on %s:\n%s", cfg.data.name, table)
        t.log_results({f"test_acc_{r['strategy']}_shots{r['shots']}": r["test_acc"] for r in rows})
        t.log_artifact(out, "finetune")
        done(t, out)


if __name__ == "__main__":
    main()
