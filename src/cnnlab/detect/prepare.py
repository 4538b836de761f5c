"""``prepare`` for detection data sets: dispatch on ``data.source`` (scenes, voc)."""

from __future__ import annotations

from omegaconf import DictConfig

SOURCES = ("scenes", "voc")


def prepare_detection(cfg: DictConfig) -> dict:
    """Prepare ``cfg.data`` into ``cfg.paths.prepared``; returns dataset.json's content.

    Raises:
        DataError: bad input, naming the file and object (nothing is written).
    """
    d = cfg.data
    if d.source == "scenes":
        from .scenes import SceneConfig, generate

        sc = SceneConfig(image_size=int(d.image_size), counts=tuple((k, int(v)) for k, v in d.counts.items()),
                         objects=tuple(d.objects), object_size=tuple(float(v) for v in d.object_size),
                         aspect=tuple(float(v) for v in d.aspect), rotation=float(d.rotation),
                         max_iou=float(d.max_iou), max_hidden=float(d.max_hidden), near=float(d.near))
        return generate(cfg.paths.prepared, d.faces_root, dict(d.face_split), sc, int(d.seed),
                        backgrounds=d.backgrounds, name=d.name)
    if d.source == "voc":
        from .voc import import_voc

        return import_voc(d.root, cfg.paths.prepared, name=d.name, seed=int(d.split.seed),
                          val=float(d.split.val), test=float(d.split.test), classes_file=d.get("classes_file"))
    raise ValueError(f"data.source must be one of {SOURCES}, got {d.source!r}")
