"""Stage ``evaluate``: a trained checkpoint + the test split → ``reports/eval/<ds>/<model>/seed<n>/``."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ._app import log, stage, tracker


@stage
def main(cfg: DictConfig) -> None:
    from ..evaluate.classification import evaluate_checkpoint

    with tracker("evaluate", cfg, model=cfg.model.name, seed=cfg.seed) as t:
        metrics = evaluate_checkpoint(Path(cfg.paths.run) / "best.ckpt", cfg.paths.prepared, cfg.paths.eval)
        log.info("evaluated %s: %s", cfg.paths.eval, metrics)
        t.log_metrics(metrics)
        t.log_artifact(cfg.paths.eval, "eval")


if __name__ == "__main__":
    main()
