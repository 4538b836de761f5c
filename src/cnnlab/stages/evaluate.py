"""Stage ``evaluate``: a trained checkpoint + the test split → ``reports/eval/<ds>/<model>/seed<n>/``."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ._app import done, log, stage, tracker


@stage
def main(cfg: DictConfig) -> None:
    from ..evaluate.classification import evaluate_checkpoint
    from ..io import write_json

    with tracker("evaluate", cfg, model=cfg.model.name, seed=cfg.seed) as t:
        train_runs = t.link_train_runs(cfg.paths.run)
        ckpt = Path(cfg.paths.run) / "best.ckpt"
        metrics = evaluate_checkpoint(ckpt, cfg.paths.prepared, cfg.paths.eval)
        # Paths and ids beside the headline metrics, not in them (select reads it).
        write_json(Path(cfg.paths.eval) / "source.json",
                   {"checkpoint": str(ckpt), "train_run_id": train_runs[0] if train_runs else None,
                    "evaluate_run_id": t.run_id})
        log.info("evaluated %s: %s", cfg.paths.eval, metrics)
        t.log_results(metrics)
        t.log_artifact(cfg.paths.eval, "eval")
        done(t, cfg.paths.eval)


if __name__ == "__main__":
    main()
