"""Stage ``prepare``: raw source → ``data/prepared/<data.name>/`` (image folders + manifest)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ._app import log, stage, tracker


def run(cfg: DictConfig) -> dict:
    """Prepare ``cfg.data`` into ``cfg.paths.prepared``; returns the dataset.json content."""
    # Imported here, not at module level: `--help` and config errors need no numpy, PIL or sklearn.
    from ..data.prepare import SplitConfig, digits_source, folder_source, prepare_dataset

    d = cfg.data
    if d.source in ("scenes", "voc"):  # detection data sets: boxes, masks, landmarks
        return __import__("cnnlab.detect.prepare", fromlist=["_"]).prepare_detection(cfg)
    if d.source == "sklearn_digits":
        items = digits_source(d.image_size or 32)
    elif d.source == "folder":
        items = folder_source(d.root, "L" if d.channels == 1 else "RGB")
    else:
        raise ValueError(f"data.source must be 'sklearn_digits' or 'folder', got {d.source!r}")
    return prepare_dataset(items, cfg.paths.prepared, SplitConfig(**d.split), channels=d.channels,
                           limit_per_class=d.limit_per_class, name=d.name, classes=d.get("classes"))


@stage
def main(cfg: DictConfig) -> None:
    with tracker("prepare", cfg) as t:
        meta = run(cfg)
        log.info("prepared %s: %s", cfg.paths.prepared, meta["counts"])
        t.log_metrics({f"n_{k}": v for k, v in meta["counts"].items()} | {"n_classes": len(meta["classes"])})
        t.log_artifact(Path(cfg.paths.prepared) / "dataset.json")


if __name__ == "__main__":
    main()
