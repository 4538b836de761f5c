"""Training a detector (``detector=yolo|faster_rcnn|rcnn_mini``) through the one training skeleton."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from ..data.images import DataError
from .data import read_meta, read_split
from .datamodule import DetectionDataModule
from .module import DetectorModule
from .yolo.anchors import kmeans, mean_best_iou


def input_size(cfg: DictConfig) -> int:
    """``detector.input_size``; ``auto`` is the scenes' ``data.image_size``, else 320 for photos."""
    size = cfg.detector.input_size
    if size == "auto":
        return int(cfg.data.get("image_size") or 320) if cfg.data.name == "scenes" else 320
    return int(size)


def augment_policy(cfg: DictConfig) -> str:
    """``detector.augment``; ``auto`` is ``colour_scale`` on the scenes (no flips) and ``photo`` elsewhere."""
    name = cfg.detector.augment
    return ("colour_scale" if cfg.data.name == "scenes" else "photo") if name == "auto" else name


def train_shapes(root: str | Path) -> torch.Tensor:
    """Box shapes ``[N, 2]`` of the training split as fractions of each image's longer side.

    That is what a box becomes, relative to the input side, after letterboxing.
    """
    shapes = []
    for rec in read_split(root, "train"):
        side = max(rec["width"], rec["height"])
        shapes += [[(o["box"][2] - o["box"][0]) / side, (o["box"][3] - o["box"][1]) / side] for o in rec["objects"]]
    if not shapes:
        raise DataError(f"{root}/train/annotations.json: no boxes to fit anchors on")
    return torch.tensor(shapes)


def anchors(cfg: DictConfig, root: str | Path) -> list[list[float]]:
    """``detector.anchors``: a list as given, or ``kmeans`` with ``detector.num_anchors`` clusters."""
    spec = cfg.detector.anchors
    if spec == "kmeans":
        return [[round(float(v), 5) for v in a] for a in kmeans(train_shapes(root), int(cfg.detector.num_anchors), seed=cfg.seed)]
    if isinstance(spec, str):
        raise ValueError(f"detector.anchors must be 'kmeans' or a list of [w, h], got {spec!r}")
    return [[float(w), float(h)] for w, h in OmegaConf.to_container(spec)]


def build(cfg: DictConfig) -> tuple[DetectorModule, DetectionDataModule]:
    """The detector of ``cfg.detector`` and the data of ``cfg.paths.prepared``."""
    from .checkpoint import families

    d = cfg.detector
    root = Path(cfg.paths.prepared)
    classes = list(read_meta(root)["classes"])
    size = input_size(cfg)
    optim = OmegaConf.to_container(cfg.optim, resolve=True)
    optim["lr"] = float(d.lr)
    common: dict[str, Any] = dict(classes=classes, backbone=d.backbone, input_size=size,
                                  backbone_kwargs=OmegaConf.to_container(d.backbone_kwargs) if d.get("backbone_kwargs") else None,
                                  score=float(d.score), iou=float(d.iou), optim=optim,
                                  scheduler=OmegaConf.to_container(d.schedule, resolve=True) if d.get("schedule") else None)
    if d.kind == "yolo":
        extra = dict(anchors=anchors(cfg, root), head_width=int(d.head_width),
                     head_layers=int(d.get("head_layers", 1)), loss=OmegaConf.to_container(d.loss))
    elif d.kind == "faster_rcnn":
        extra = dict(anchor_sizes=list(d.anchor_sizes), aspect_ratios=list(d.aspect_ratios),
                     rpn_post_nms_top_n=int(d.rpn_post_nms_top_n))
    elif d.kind == "rcnn_mini":
        extra = dict(crop=int(d.crop), proposal_sizes=list(d.proposal_sizes), top_k=int(d.top_k), negatives=int(d.negatives))
    else:
        raise ValueError(f"detector.kind must be one of {sorted(families())}, got {d.kind!r}")
    module = families()[d.kind](**common, **extra)
    dm = DetectionDataModule(root, size, batch_size=int(d.batch_size), num_workers=int(cfg.num_workers),
                             augment=augment_policy(cfg), limit=d.get("limit"))
    return module, dm


def trainer_overrides(cfg: DictConfig) -> dict[str, Any]:
    """``detector.epochs``, and validation every ``detector.val_every`` epochs (capped at ``epochs``,
    so that at least one epoch is validated and ``best.ckpt`` exists)."""
    epochs = int(cfg.detector.epochs)
    every = max(1, min(int(cfg.detector.get("val_every") or 1), epochs))
    return {"max_epochs": epochs, "check_val_every_n_epoch": every}


def train_detector(cfg: DictConfig, callbacks: Sequence[L.Callback] = ()) -> dict[str, Any]:
    """Seed, build, train and publish ``best.ckpt``, ``last.ckpt``, ``metrics.json`` into ``paths.run``.

    ``metrics.json`` adds ``train_seconds`` (wall time of the fit) and, for YOLO, the anchors'
    mean best IoU on the training boxes (``anchor_mean_iou``).
    """
    from ..tasks.fit import warn_unused_speed
    from ..tasks.skeleton import fit_and_publish

    # bf16 and the device come from the Trainer; images stay on the host (variable box counts)
    warn_unused_speed(cfg, f"{cfg.detector.kind} detector training")
    L.seed_everything(cfg.seed, workers=True)
    module, dm = build(cfg)
    start = time.perf_counter()

    def summary(mod, trainer, ckpt) -> dict[str, Any]:
        out: dict[str, Any] = {"train_seconds": round(time.perf_counter() - start, 2)}
        if cfg.detector.kind == "yolo":
            out["anchor_mean_iou"] = mean_best_iou(train_shapes(dm.root), torch.tensor(mod.hparams.anchors))
        return out

    return fit_and_publish(cfg, module, dm, cfg.paths.run, monitor="val/map_50", mode="max",
                           patience=cfg.detector.get("patience"), callbacks=callbacks,
                           trainer_overrides=trainer_overrides(cfg), summary=summary,
                           quiet_warnings=[".*does not have many workers.*", ".*GPU available but not used.*"])
