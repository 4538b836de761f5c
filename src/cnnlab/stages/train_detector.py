"""Stage ``train_detector``: ``detector=yolo|faster_rcnn|rcnn_mini`` on ``data=scenes|voc`` → ``models/detection/<ds>/<detector>/``.

A VOC folder (``data=voc data.root=DIR``) is imported first when ``paths.prepared`` holds no
prepared data set yet.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ._app import log, stage, tracker


@stage(config_name="detect")
def main(cfg: DictConfig) -> None:
    from ..detect.train import train_detector
    from ..tasks.callbacks import MLflowMetrics

    if cfg.data.source != "scenes" and not (Path(cfg.paths.prepared) / "dataset.json").is_file():
        from ..detect.prepare import prepare_detection

        log.info("importing %s into %s", cfg.data.get("root"), cfg.paths.prepared)
        prepare_detection(cfg)
    with tracker("train_detector", cfg, detector=cfg.detector.name) as t:
        metrics = train_detector(cfg, callbacks=[MLflowMetrics(t)])
        log.info("trained %s: %s", cfg.paths.run, metrics)
        t.log_metrics(metrics)
        t.log_artifact(Path(cfg.paths.run) / "metrics.json")


if __name__ == "__main__":
    main()
