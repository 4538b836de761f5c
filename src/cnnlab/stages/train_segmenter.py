"""Stage ``train_segmenter``: prepared masks + ``model=<unet...>`` → ``models/segmentation/<ds>/<model>/``.

``data=masks data.root=DIR`` imports the folder first (again whenever it changed).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ._app import log, stage, tracker


@stage(config_name="segment")
def main(cfg: DictConfig) -> None:
    from ..segment.train import fit
    from ..tasks.callbacks import MLflowMetrics

    with tracker("train_segmenter", cfg, model=cfg.model.name, seed=cfg.seed) as t:
        metrics = fit(cfg, callbacks=[MLflowMetrics(t)])
        log.info("trained %s: %s", cfg.paths.run, metrics)
        t.log_metrics({k: v for k, v in metrics.items() if v is not None})
        t.log_artifact(Path(cfg.paths.run) / "metrics.json")


if __name__ == "__main__":
    main()
