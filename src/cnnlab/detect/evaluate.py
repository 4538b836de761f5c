"""Evaluate the week-3 systems on a test split: metrics.json, predictions with ground truth, error cases.

Each ``evaluate_*`` writes one report folder atomically (``reports/detection/<data>/<task>/``).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image

from ..io import atomic_path
from .crops import to_tensor
from .data import DetectionDataset
from .preview import draw_objects, grid
from .tasks import crops_for, load

N_PICTURES = 24


def _predict(module, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([module(x[i:i + batch]) for i in range(0, len(x), batch)])


def _crop_tiles(images: np.ndarray, truth: list, pred: list, scale: int = 4) -> list[Image.Image]:
    """Crops with the true box (thin, white) and the predicted one (coloured, labelled) or landmarks (green)."""
    tiles = []
    for img, t, p in zip(images, truth, pred):
        s = img.shape[0]
        canvas = draw_objects(img, [np.asarray(b) * s for b in t["boxes"]], t["labels"], t["ids"], scale=scale,
                              dashed=True)
        canvas = draw_objects(img, [np.asarray(b) * s for b in p["boxes"]], p["labels"], p["ids"], scale=scale,
                              scores=p.get("scores"), canvas=canvas)
        if p.get("marks") is not None:  # crop units → the picture's pixel-index landmarks
            canvas = draw_objects(img, [[0, 0, s, s]], [""], [0], landmarks=[np.asarray(p["marks"]) * s - 0.5],
                                  scale=scale, canvas=canvas, boxes_visible=False)
        tiles.append(canvas)
    return tiles


def evaluate_localiser(cfg: DictConfig) -> dict[str, Any]:
    """Accuracy, localisation accuracy (right class, IoU ≥ 0.5) and mean IoU on the test crops."""
    from torchvision.ops import box_iou

    from .localiser import decode, scores, to_xyxy

    module = load(Path(cfg.paths.localiser) / "best.ckpt", "localiser")
    hp = module.hparams
    crops = crops_for(cfg, "localiser", "test")
    out = _predict(module, to_tensor(crops.images, hp.normalization))
    cid, box = torch.from_numpy(crops.class_id), torch.from_numpy(crops.box)
    metrics = scores(out, cid, box) | {"n_crops": len(crops), "n_objects": int((cid >= 0).sum()), "loss": hp.loss}
    d = decode(out)
    has = cid >= 0
    iou = torch.zeros(len(cid))
    iou[has] = box_iou(to_xyxy(d["box"][has]), to_xyxy(box[has])).diagonal()
    pred = torch.where(d["p_c"] >= 0.5, d["class_id"], torch.full_like(cid, -1))
    classes = list(hp.classes)
    metrics["per_class_localisation_accuracy"] = {
        c: float(((pred == k) & (iou >= 0.5))[cid == k].float().mean()) for k, c in enumerate(classes) if (cid == k).any()}
    name = lambda k: classes[k] if k >= 0 else "background"  # noqa: E731
    truth = [{"boxes": [to_xyxy(box[i]).tolist()] if cid[i] >= 0 else [], "labels": [name(int(cid[i]))] if cid[i] >= 0 else [],
              "ids": [int(cid[i])]} for i in range(len(cid))]
    preds = [{"boxes": [to_xyxy(d["box"][i]).tolist()] if pred[i] >= 0 else [[0.02, 0.02, 0.98, 0.98]],
              "labels": [name(int(pred[i])) if pred[i] == cid[i] else f"{name(int(pred[i]))}, is {name(int(cid[i]))}"],
              "ids": [max(int(pred[i]), 0) if pred[i] >= 0 else 9],
              "scores": [float(d["p_c"][i])]} for i in range(len(cid))]
    wrong = [i for i in range(len(cid)) if pred[i] != cid[i] or (cid[i] >= 0 and iou[i] < 0.5)]
    wrong = sorted(wrong, key=lambda i: float(iou[i]))[:N_PICTURES]
    return _publish(cfg, "localiser", metrics, crops.images, truth, preds, list(range(min(N_PICTURES, len(cid)))), wrong)


def evaluate_landmarks(cfg: DictConfig) -> dict[str, Any]:
    """NME (by the inter-ocular distance) of the regressor, dlib's 5-point predictor and the mean shape."""
    from .landmarks import dlib_landmarks, mean_shape, nme

    module = load(Path(cfg.paths.landmarks) / "best.ckpt", "landmarks")
    hp = module.hparams
    crops = crops_for(cfg, "landmarks", "test")
    true = crops.landmarks.astype(np.float64)
    pred = _predict(module, to_tensor(crops.images, hp.normalization)).numpy().astype(np.float64)
    base = np.broadcast_to(mean_shape(crops_for(cfg, "landmarks", "train").landmarks), true.shape)
    ds = DetectionDataset(cfg.paths.prepared, "test")
    ref = np.zeros_like(true)
    for i, (k, x0, y0, side, _) in enumerate(crops.source):
        image = ds[int(k)][0].permute(1, 2, 0).numpy()
        bx, by, bh, bw = crops.box[i]
        box = [x0 + (bx - bw / 2) * side, y0 + (by - bh / 2) * side, x0 + (bx + bw / 2) * side, y0 + (by + bh / 2) * side]
        ref[i] = (dlib_landmarks(image, box) + 0.5 - [x0, y0]) / side
    e = {"regressor": nme(pred, true), "dlib": nme(ref, true), "mean_shape": nme(base, true)}
    metrics = {f"nme_{k}": float(v.mean()) for k, v in e.items()} | {
        f"nme_{k}_median": float(np.median(v)) for k, v in e.items()} | {"n_faces": len(true)}
    tb = lambda i: [[*(crops.box[i][:2] - crops.box[i][[3, 2]] / 2), *(crops.box[i][:2] + crops.box[i][[3, 2]] / 2)]]  # noqa: E731
    truth = [{"boxes": tb(i), "labels": ["face"], "ids": [0]} for i in range(len(true))]
    preds = [{"boxes": [], "labels": [], "ids": [], "marks": pred[i]} for i in range(len(true))]
    for t, m in zip(truth, true):  # the true landmarks in white under the predicted ones (green)
        t["marks"] = m
    worst = list(np.argsort(-e["regressor"])[:N_PICTURES])
    return _publish(cfg, "landmarks", metrics, crops.images, truth, preds, list(range(min(N_PICTURES, len(true)))),
                    worst, true_marks=true)


def _publish(cfg, task: str, metrics: dict, images, truth, preds, shown, wrong, true_marks=None) -> dict:
    from ..io import write_metrics

    out = Path(cfg.paths.reports) / task
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        for name, idx in (("predictions.png", shown), ("errors.png", wrong)):
            if not len(idx):
                _note(tmp / name, "no error cases")
                continue
            tiles = _crop_tiles(images[list(idx)], [truth[i] for i in idx], [preds[i] for i in idx])
            if true_marks is not None:
                tiles = [_white_marks(t, true_marks[i], images.shape[1]) for t, i in zip(tiles, idx)]
            grid(tiles, cols=8).save(tmp / name)
        write_metrics(tmp, metrics)
    return metrics


def _note(path: Path, text: str) -> None:
    from PIL import ImageDraw

    pic = Image.new("RGB", (240, 40), (255, 255, 255))
    ImageDraw.Draw(pic).text((10, 14), text, fill=(0, 0, 0))
    pic.save(path)


def _white_marks(tile: Image.Image, marks: np.ndarray, side: int) -> Image.Image:
    from PIL import ImageDraw

    draw = ImageDraw.Draw(tile)
    s = tile.size[0] / side
    for x, y in np.asarray(marks) * side * s:
        draw.line([x - 3, y, x + 3, y], fill=(255, 255, 255), width=1)
        draw.line([x, y - 3, x, y + 3], fill=(255, 255, 255), width=1)
    return tile


def mean_average_precision(preds: list[dict], targets: list[dict]) -> dict[str, Any]:
    """COCO mAP@0.5 and mAP@[.5:.95] (torchmetrics, pycocotools backend); ``difficult`` objects are ignored
    (passed as ``iscrowd``: matching one neither counts nor costs, as VOC's difficult flag)."""
    from torchmetrics.detection import MeanAveragePrecision

    m = MeanAveragePrecision(iou_type="bbox", class_metrics=True, backend="pycocotools")
    m.update(preds, [{"boxes": t["boxes"], "labels": t["labels"], "iscrowd": t["difficult"].long()} for t in targets])
    r = m.compute()
    return {"map_50": float(r["map_50"]), "map_50_95": float(r["map"]),
            "per_class_ap": {int(c): float(a) for c, a in zip(r["classes"].reshape(-1), r["map_per_class"].reshape(-1))}}


def evaluate_windows(cfg: DictConfig) -> dict[str, Any]:
    """Sliding windows on the test scenes: mAP, windows per image, ms per image naive vs convolutional."""
    from .windows import conv_windows, detections, naive_windows, to_convolutional

    module = load(Path(cfg.paths.windows) / "best.ckpt", "windows")
    hp = module.hparams
    fc, conv = module.model.eval(), to_convolutional(module.model)
    ds = DetectionDataset(cfg.paths.prepared, "test")
    classes = list(hp.classes)
    mean = torch.tensor(hp.normalization["mean"]).view(-1, 1, 1)
    std = torch.tensor(hp.normalization["std"]).view(-1, 1, 1)
    # mAP ranks every detection by score, so it needs the low-scoring ones too (as the detectors'
    # evaluation does); the display threshold only chooses what the pictures and recall show. Greedy
    # NMS decides a box's fate from higher-scoring boxes only, so the displayed detections are the
    # ranked ones that score above the display threshold.
    map_threshold = min(float(cfg.windows.get("map_threshold", 0.01)), hp.threshold)
    preds, ranked, targets, images, t_conv = [], [], [], [], 0.0
    for image, target in ds:
        x = (image.float() / 255 - mean) / std
        t0 = time.perf_counter()
        ranked.append(detections(conv_windows(conv, x, hp.sizes, hp.stride), len(classes), map_threshold, hp.iou))
        t_conv += time.perf_counter() - t0
        shown = ranked[-1]["scores"] > hp.threshold
        preds.append({k: v[shown] for k, v in ranked[-1].items()})
        targets.append(target)
        images.append(image)
    x = (images[0].float() / 255 - mean) / std
    t0 = time.perf_counter()
    naive = naive_windows(fc, x, hp.sizes, hp.stride)
    t_naive = time.perf_counter() - t0
    same32 = float((naive.logits - conv_windows(conv, x, hp.sizes, hp.stride).logits).abs().max())
    fc64 = copy.deepcopy(fc).double()  # the same weights in float64: agreement beyond float32 rounding
    same = float((naive_windows(fc64, x.double(), hp.sizes, hp.stride).logits
                  - conv_windows(to_convolutional(fc64), x.double(), hp.sizes, hp.stride).logits).abs().max())
    metrics = mean_average_precision(ranked, targets)
    metrics["per_class_ap"] = {classes[k]: v for k, v in metrics["per_class_ap"].items()}
    metrics |= {"map_score_threshold": map_threshold, "windows_per_image": sum(naive.counts), "naive_ms_per_image": 1000 * t_naive,
                "conv_ms_per_image": 1000 * t_conv / len(ds), "naive_vs_conv_max_abs_diff": same,
                "naive_vs_conv_max_abs_diff_float32": same32,
                "latency_ms_per_image": 1000 * t_conv / len(ds), "n_images": len(ds)}
    return _publish_scenes(cfg, metrics, images, targets, preds, classes)


def _recall(pred: dict, target: dict) -> float:
    from torchvision.ops import box_iou

    if len(target["boxes"]) == 0:
        return 1.0
    if len(pred["boxes"]) == 0:
        return 0.0
    iou = box_iou(target["boxes"].as_subclass(torch.Tensor), pred["boxes"])
    same = target["labels"][:, None] == pred["labels"][None]
    return float(((iou >= 0.5) & same).any(1).float().mean())


def _publish_scenes(cfg, metrics, images, targets, preds, classes) -> dict:
    from ..io import write_metrics

    def tile(i: int) -> Image.Image:
        img, t, p = images[i].permute(1, 2, 0).numpy(), targets[i], preds[i]
        canvas = draw_objects(img, t["boxes"].tolist(), [classes[k] for k in t["labels"]], t["labels"].tolist(),
                              dashed=True)
        return draw_objects(img, p["boxes"].tolist(), [classes[k] for k in p["labels"]], p["labels"].tolist(),
                            scores=p["scores"].tolist(), canvas=canvas)

    recalls = [_recall(p, t) for p, t in zip(preds, targets)]
    out = Path(cfg.paths.reports) / "windows"
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        grid([tile(i) for i in range(min(8, len(images)))], cols=4).save(tmp / "boxes.png")
        grid([tile(int(i)) for i in np.argsort(recalls, kind="stable")[:8]], cols=4).save(tmp / "errors.png")
        write_metrics(tmp, metrics)
    return metrics
