"""Stage ``evaluate_detector``: a trained detector on the test split → ``reports/detection/<ds>/<detector>/``."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ._app import log, stage, tracker


@stage(config_name="detect")
def main(cfg: DictConfig) -> None:
    from ..detect.evaluate_detector import evaluate_detector

    with tracker("evaluate_detector", cfg, detector=cfg.detector.name) as t:
        metrics = evaluate_detector(Path(cfg.paths.run) / "best.ckpt", cfg.paths.prepared, cfg.paths.eval)
        log.info("evaluated %s: mAP@0.5 %.3f, mAP@[.5:.95] %.3f, %.1f ms/image", cfg.detector.name,
                 metrics["map_50"], metrics["map_50_95"], metrics["latency_ms_per_image"])
        t.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        for name in ("metrics.json", "pr.png", "boxes.png"):
            t.log_artifact(Path(cfg.paths.eval) / name)


if __name__ == "__main__":
    main()
