"""Stage ``train``: prepared data + ``model=<name>`` + ``seed=<n>`` → ``models/<ds>/<model>/seed<n>/``."""

from __future__ import annotations

from omegaconf import DictConfig

from ._app import done_training, log, stage, tracker


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
        done_training(t, cfg.paths.run)


if __name__ == "__main__":
    main()
