"""Evaluating a trained detector on a prepared split: mAP, per-class AP, PR curves, pictures, latency.

Writes ``<out>/{metrics.json, pr.png, boxes.png}`` as one folder, atomically: a failure (an
unknown class in the annotations, an image that does not decode) leaves nothing behind.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..data.images import DataError
from ..io import atomic_path
from .checkpoint import load_detector
from .data import DetectionDataset, read_split
from .metrics import coco_target, metric, plot_pr, pr_curves, summarise
from .preview import draw_objects, grid
from .transforms import detector_transform


def check_classes(root: Path, split: str, known: list[str]) -> dict[int, int]:
    """Map the data set's class ids onto the detector's, by name.

    Raises:
        DataError: an object whose class the detector does not know, naming file, image and object.
    """
    records = read_split(root, split)
    names = DetectionDataset(root, split).classes
    for rec in records:
        for i, o in enumerate(rec["objects"]):
            if o["class"] not in known:
                raise DataError(f"{root / split / 'annotations.json'}: image {rec['id']!r} object {i}: class "
                                f"{o['class']!r} is unknown to the detector (it knows {known})")
    return {j: known.index(n) for j, n in enumerate(names) if n in known}


def _load(ds: DetectionDataset, i: int):
    try:
        return ds[i]
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        rec = ds.records[i]
        raise DataError(f"{ds.root / ds.split / rec['file']}: cannot decode the image ({err})") from None


def evaluate_detector(ckpt: str | Path, root: str | Path, out: str | Path, *, split: str = "test",
                      pictures: int = 8) -> dict[str, Any]:
    """Evaluate ``ckpt`` on ``root``/``split``; returns the metrics and writes them (``details.json``;
    their numbers: ``metrics.json``).

    Keys: ``map_50``, ``map_50_95``, ``map_75``, ``ap_50_per_class``, ``ap_per_class``,
    ``latency_ms_per_image`` (median over the split of one-image ``detect`` calls on CPU, threads
    as configured; the first call, a warm-up, is left out),
    ``num_params``, ``images``, ``detector``. mAP ranks every detection with score ≥ 0.01; the
    pictures show those ≥ the detector's display threshold (``hparams.score``, 0.6).
    """
    root = Path(root)
    module = load_detector(ckpt)
    hp = module.hparams
    classes = list(hp.classes)
    remap = check_classes(root, split, classes)
    ds = DetectionDataset(root, split, detector_transform(int(hp.input_size), "none"))
    m = metric()
    tiles, times = [], []
    for i in range(len(ds)):
        image, target = _load(ds, i)
        target["labels"] = torch.tensor([remap[int(c)] for c in target["labels"]], dtype=torch.int64)
        start = time.perf_counter()
        pred = module.detect([image], module.eval_score, float(hp.iou))[0]
        times.append(time.perf_counter() - start)
        m.update([pred], [coco_target(target)])
        if len(tiles) < pictures:
            tiles.append(_picture(image, target, pred, classes, float(hp.score)))
    if not len(ds):
        raise DataError(f"{root / split}: no images to evaluate")
    result = m.compute()
    summary = summarise(result, classes)
    lat = float(np.median(times[1:] or times)) * 1000
    metrics = {**summary, "latency_ms_per_image": round(lat, 3), "num_params": sum(p.numel() for p in module.parameters()),
               "images": len(ds), "detector": hp.kind, "split": split, "threads": torch.get_num_threads()}
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        plot_pr(pr_curves(result, classes), summary["ap_50_per_class"], tmp / "pr.png",
                f"{hp.kind} on {root.name}/{split}: mAP@0.5 {summary['map_50']:.3f}")
        grid(tiles, cols=4).save(tmp / "boxes.png")
        from ..io import write_metrics

        write_metrics(tmp, metrics)   # per-class AP, detector and split: details.json
    return metrics


def _picture(image: torch.Tensor, target: dict, pred: dict, classes: list[str], score: float) -> Image.Image:
    """Ground truth (thin white) under predictions with score ≥ ``score`` (class colours)."""
    arr = (image.permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)
    gt = target["boxes"].tolist()
    canvas = draw_objects(arr, gt, [classes[int(c)] for c in target["labels"]], target["labels"].tolist(), dashed=True)
    keep = pred["scores"] >= score
    return draw_objects(arr, pred["boxes"][keep].tolist(), [classes[int(c)] for c in pred["labels"][keep]],
                        pred["labels"][keep].tolist(), scores=pred["scores"][keep].tolist(), canvas=canvas)
