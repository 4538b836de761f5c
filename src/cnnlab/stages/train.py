"""Stage ``train``: prepared data + ``model=<name>`` + ``seed=<n>`` → ``models/<ds>/<model>/seed<n>/``."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ._app import done, log, stage, tracker


@stage
def main(cfg: DictConfig) -> None:
    from ..tasks.callbacks import MLflowMetrics
    from ..tasks.config_check import check_training_config
    from ..tasks.fit import fit, is_launch_rank_zero

    check_training_config(cfg)  # a bad value is named by its key before any work
    if not is_launch_rank_zero():
        # A DDP worker (trainer=ddp): it trains its shard; rank 0 publishes and records the run.
        fit(cfg)
        return
    with tracker("train", cfg, model=cfg.model.name, seed=cfg.seed) as t:
        metrics = fit(cfg, callbacks=[MLflowMetrics(t)])
        log.info("trained %s: %s", cfg.paths.run, metrics)
        t.log_results(metrics)
        run = Path(cfg.paths.run)
        t.set_tags({"cnnlab.run_dir": cfg.paths.run})
        for name in ("metrics.json", "history.csv", "learning_curves.png", "best.ckpt"):
            if (run / name).is_file():
                t.log_artifact(run / name, "model" if name == "best.ckpt" else None)
        done(t, run)


if __name__ == "__main__":
    main()
