"""Stage ``prepare``: raw source → ``data/prepared/<data.name>/`` (image folders + manifest).

``data.source`` picks the preparer (``cnnlab.data.prepare.PREPARERS``). Your own image folder:
``python -m cnnlab.stages.prepare data=folder data.root=DIR data.name=NAME``; later stages then
need only ``data.name=NAME`` (dataset.json records how it was prepared).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ._app import log, stage, to_dict, tracker, done


def run(cfg: DictConfig) -> dict:
    """Prepare ``cfg.data`` into ``cfg.paths.prepared``; returns the dataset.json content."""
    # Imported here, not at module level: `--help` and config errors need no numpy, PIL or sklearn.
    from ..data.prepare import prepare

    # Detection and segmentation data sets read the whole config (paths, seed); the classification
    # sources go through cnnlab.data.prepare.PREPARERS.
    source = cfg.data.source
    if source in ("scenes", "voc"):  # boxes, masks, landmarks (cnnlab.detect)
        from ..detect.prepare import prepare_detection

        return prepare_detection(cfg)
    if source == "masks":  # image/mask folders for segmentation (cnnlab.segment.masks)
        from ..segment.masks import prepare_from_config

        return prepare_from_config(cfg)
    return prepare(to_dict(cfg.data), cfg.paths.prepared)


@stage(recorded_data=False)
def main(cfg: DictConfig) -> None:
    with tracker("prepare", cfg) as t:
        meta = run(cfg)
        counts = meta.get("counts") or meta.get("splits") or {}  # detection data sets say "splits"
        imp = meta.get("import") or {"n_skipped": 0, "n_changed": 0}
        log.info("prepared %s: %s (%d skipped, %d changed; dataset.json \"import\")", cfg.paths.prepared,
                 counts, imp["n_skipped"], imp["n_changed"])
        t.log_results({f"n_{k}": v for k, v in counts.items()} | {"n_classes": len(meta["classes"])}
                      | {"n_skipped": imp["n_skipped"], "n_changed": imp["n_changed"]})
        t.log_artifact(Path(cfg.paths.prepared) / "dataset.json")
        done(t, cfg.paths.prepared)


if __name__ == "__main__":
    main()
