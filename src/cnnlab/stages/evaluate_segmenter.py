"""Stage ``evaluate_segmenter``: ``best.ckpt`` + the test split → ``reports/segmentation/<ds>/<model>/``."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ._app import log, stage, tracker


@stage(config_name="segment")
def main(cfg: DictConfig) -> None:
    from ..segment.evaluate import evaluate_segmenter
    from ..segment.masks import ensure_prepared

    ensure_prepared(cfg)
    with tracker("evaluate_segmenter", cfg, model=cfg.model.name, seed=cfg.seed) as t:
        m = evaluate_segmenter(Path(cfg.paths.run) / "best.ckpt", cfg.paths.prepared, cfg.paths.report,
                               n_show=cfg.segmenter.n_show)
        log.info("evaluated %s: mIoU %.3f, Dice %.3f, pixel accuracy %.3f, %.1f ms/image", cfg.paths.report,
                 m["miou"], m["dice"], m["pixel_acc"], m["ms_per_image"])
        t.log_metrics({k: m[k] for k in ("miou", "dice", "pixel_acc", "ms_per_image")}
                      | {f"iou_{c}": v for c, v in m["iou"].items()})
        t.log_artifact(cfg.paths.report, "segmentation")


if __name__ == "__main__":
    main()
