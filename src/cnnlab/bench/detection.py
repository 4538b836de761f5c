"""Detectors on the scenes' test split (issue 17): one table, and hand vs k-means anchors.

1. YOLO, Faster R-CNN (from scratch) and R-CNN in miniature trained here on the same data and
   the same budget (``--epochs``), then evaluated on the test split: mAP@0.5, mAP@[.5:.95], ms
   per image on CPU (one image at a time, median), parameters, training time. The sliding-window
   detector of issue 16 joins the table (naive and convolutional, the same detections): its window
   classifier is trained here too (``conf/windows``: its own epochs over object/background crops)
   and evaluated on the same test split, as the ``train_windows``/``evaluate_windows`` stages do.
2. Anchors: mean IoU of the training boxes with their best anchor, for the hand-chosen anchors
   (``detector.hand_anchors``: YOLOv2's VOC anchors) and for k-means (1 − IoU) with k = 1..9.

    python -m cnnlab.bench.detection --epochs 30

Writes the ``detection`` section of docs/BENCHMARKS.md (``--output`` to write elsewhere).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from cnnlab.bench.report import DEFAULT_PATH, write_section

DETECTORS = ("yolo", "faster_rcnn", "rcnn_mini")
GOAL_MAP50 = 0.90


def train_and_evaluate(name: str, root: Path, work: Path, epochs: int, threads: int, reuse: bool = False,
                       trainer: str = "cpu") -> dict[str, Any]:
    """Train detector ``name`` in-process (no MLflow) and evaluate it; the table row.

    ``trainer``: the ``conf/trainer`` option training runs on (``gpu`` on a CUDA machine); the
    evaluation and its ms / image are on CPU either way.

    With ``reuse``, a run already published in ``work/<name>`` (by an earlier call with the same
    ``epochs``) is evaluated again instead of retrained.
    """
    from cnnlab.detect.evaluate_detector import evaluate_detector
    from cnnlab.detect.train import train_detector
    from cnnlab.stages._app import compose

    cfg = compose(f"detector={name}", f"detector.epochs={epochs}", f"paths.prepared={root}", f"trainer={trainer}",
                  f"paths.run={work / name}", "trainer.enable_progress_bar=false",
                  "trainer.enable_model_summary=false", config_name="detect")
    torch.set_num_threads(threads)
    done = work / name / "metrics.json"
    trained = json.loads(done.read_text()) if reuse and done.is_file() else train_detector(cfg)
    if trained["epochs"] != epochs:
        raise SystemExit(f"{done}: trained for {trained['epochs']} epochs, not --epochs {epochs}")
    m = evaluate_detector(work / name / "best.ckpt", root, work / "eval" / name)
    return {"detector": name, "map_50": m["map_50"], "map_50_95": m["map_50_95"],
            "ms": m["latency_ms_per_image"], "params": m["num_params"], "train_s": trained["train_seconds"],
            "epochs": trained["epochs"], "ap_50": m["ap_50_per_class"]}


def windows_rows(root: Path, work: Path, threads: int, reuse: bool = False,
                 overrides: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Train the course's window classifier into ``work/windows`` and evaluate it on the test split.

    Two rows, one per implementation of the same detections: the naive loop over windows and its
    convolutional twin (their ms differ, their mAP is one). With ``reuse``, a classifier already
    published in ``work/windows`` is evaluated again instead of retrained. ``overrides``: extra
    Hydra overrides of the ``detect`` config (e.g. ``windows.max_epochs=1`` for a tiny run).
    """
    from cnnlab.detect.evaluate import evaluate_windows
    from cnnlab.detect.tasks import train
    from cnnlab.stages._app import compose

    cfg = compose(f"paths.prepared={root}", f"paths.windows={work / 'windows'}", f"paths.reports={work / 'eval'}",
                  "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", *overrides,
                  config_name="detect")
    torch.set_num_threads(threads)
    done = work / "windows" / "metrics.json"
    start = time.perf_counter()
    trained = json.loads(done.read_text()) if reuse and done.is_file() else train(cfg, "windows")
    seconds = trained.get("train_seconds") or round(time.perf_counter() - start, 2)
    if not (reuse and done.is_file()):
        trained["train_seconds"] = seconds
        from cnnlab.io import write_json

        write_json(done, trained)
    s = evaluate_windows(cfg)
    common = {"map_50": s["map_50"], "map_50_95": s["map_50_95"], "params": trained["num_params"], "ap_50": {},
              "train_s": trained["train_seconds"], "epochs": trained["epochs"]}
    return [{**common, "detector": "sliding windows (naive)", "ms": s["naive_ms_per_image"]},
            {**common, "detector": "sliding windows (convolutional)", "ms": s["conv_ms_per_image"]}]


def anchors_report(root: Path, hand: list[list[float]], seed: int = 0) -> tuple[float, dict[int, float]]:
    from cnnlab.detect.train import train_shapes
    from cnnlab.detect.yolo.anchors import elbow, mean_best_iou

    shapes = train_shapes(root)
    return mean_best_iou(shapes, torch.tensor(hand)), elbow(shapes, range(1, 10), seed=seed)


def body(rows: list[dict], sliding: list[dict] | None, hand_iou: float, curve: dict[int, float], n_hand: int,
         epochs: int, loaded: bool, budget: dict[str, int], reused: bool = False, trainer: str = "cpu") -> str:
    lines = ["## Detection on the scenes: YOLO, Faster R-CNN, R-CNN in miniature (issue 17)", "",
             f"Test split of the embedded scenes (60 images, 128×128, 5 classes). Every detector trained here "
             f"from scratch on the same 300 training scenes for {epochs} epochs (best epoch by val mAP@0.5), "
             + ("on CPU, one thread" if trainer == "cpu" else f"with `trainer={trainer}`") + ("; R-CNN in miniature for " + str(budget["rcnn_mini"]) + " epochs only (its validation "
             "classifies every proposal one at a time), so its accuracy is not on the same budget"
             if budget.get("rcnn_mini", epochs) != epochs else "") + ". ms / image: median of one-image `detect` "
             "calls on CPU (one thread) over the test split." + (" The checkpoints (and their training seconds) are "
             "those already in `--work` from earlier runs with these budgets (`--reuse`); the evaluation, the ms and "
             "the ratios are this run's." if reused else ""), "",
             "| detector | mAP@0.5 | mAP@[.5:.95] | ms / image (CPU) | parameters | training s | epochs trained |",
             "|---|---|---|---|---|---|---|"]
    all_rows = rows + (sliding or [])
    for r in all_rows:
        lines.append(f"| {r['detector']} | {r['map_50']:.3f} | {r['map_50_95']:.3f} | {r['ms']:.1f} | "
                     f"{r['params']:,} | {r.get('train_s') or 0:.0f} | {r.get('epochs', '–')} |")
    if sliding:
        lines += ["", "Sliding windows: the course's window classifier (issue 16, `conf/windows`) trained here on object "
                  f"and background crops of the same training scenes for its own {sliding[0]['epochs']} epochs (best by "
                  "val accuracy), evaluated on the same test split as the `evaluate_windows` stage does (its detections "
                  "are windows whose best class scores above `windows.threshold`); the naive loop and its convolutional "
                  "twin give the same detections, so one mAP and two timings (the naive one: one image)."]
    by = {r["detector"]: r for r in all_rows}
    y = by["yolo"]
    lines += ["", "Goals:", f"- YOLO mAP@0.5 ≥ {GOAL_MAP50}: **{'met' if y['map_50'] >= GOAL_MAP50 else 'not met'}** "
              f"({y['map_50']:.3f})."]
    if "faster_rcnn" in by:
        f = by["faster_rcnn"]
        lines.append(f"- YOLO above Faster R-CNN on the same budget: **{'met' if y['map_50'] > f['map_50'] else 'not met'}** "
                     f"({y['map_50']:.3f} vs {f['map_50']:.3f}); YOLO faster per image: "
                     f"**{f['ms'] / y['ms']:.1f}×** ({'met' if f['ms'] > y['ms'] else 'not met'}).")
    if "rcnn_mini" in by:
        lines.append(f"- R-CNN in miniature (100 proposals classified one at a time) is {by['rcnn_mini']['ms'] / y['ms']:.0f}× "
                     "slower per image than YOLO: why proposals are slow.")
    if sliding:
        s = by[sliding[0]["detector"]]
        lines.append(f"- YOLO ≥ 10× faster than naive sliding windows: **{'met' if s['ms'] >= 10 * y['ms'] else 'not met'}** "
                     f"({s['ms'] / y['ms']:.1f}×).")
    else:
        lines.append("- Naive sliding windows: left out of this run (`--no-sliding`), so the ≥ 10× ratio is not "
                     "measured here.")
    lines += ["", "Per-class AP@0.5: " + "; ".join(
        f"{r['detector']}: " + ", ".join(f"{k} {v:.2f}" for k, v in r["ap_50"].items() if v is not None) for r in rows), "",
        "### Anchors: mean IoU of the training boxes with their best anchor", "",
        "| anchors | mean best-anchor IoU |", "|---|---|",
        f"| hand-chosen: YOLOv2's {n_hand} VOC anchors (`detector.hand_anchors`) | {hand_iou:.3f} |"]
    lines += [f"| k-means (1 − IoU), k = {k} | {v:.3f} |" for k, v in curve.items()]
    if loaded:
        lines += ["", "Measured while other jobs shared the machine's 2 cores: absolute ms and seconds are "
                  "pessimistic; the ratios compare rows of this one run."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(Path("data/prepared") / "scenes"), help="prepared scenes (python -m cnnlab.stages.prepare data=scenes)")
    p.add_argument("--epochs", type=int, default=30, help="training epochs of every detector (the same budget)")
    p.add_argument("--rcnn-mini-epochs", type=int, help="a smaller budget for R-CNN in miniature, whose "
                   "validation classifies every proposal one at a time (default: --epochs)")
    p.add_argument("--detectors", nargs="+", default=list(DETECTORS), choices=DETECTORS)
    p.add_argument("--no-sliding", action="store_true", help="leave out the sliding-window classifier (issue 16)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--trainer", default="cpu", help="conf/trainer option to train on (gpu: a CUDA machine, for "
                   "longer budgets); evaluation and ms / image stay on CPU")
    p.add_argument("--work", help="keep checkpoints and evaluations here (default: a temporary folder)")
    p.add_argument("--reuse", action="store_true", help="evaluate runs already published in --work instead of retraining")
    p.add_argument("--loaded", action="store_true", help="say in the section that the machine was shared")
    p.add_argument("--output", default=str(DEFAULT_PATH))
    args = p.parse_args(argv)
    from cnnlab.stages._app import compose

    root = Path(args.data)
    hand = [list(a) for a in compose("detector=yolo", config_name="detect").detector.hand_anchors]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        budget = {d: args.epochs for d in args.detectors}
        if args.rcnn_mini_epochs and "rcnn_mini" in budget:
            budget["rcnn_mini"] = args.rcnn_mini_epochs
        rows = [train_and_evaluate(d, root, work, budget[d], args.threads, args.reuse, args.trainer)
                for d in args.detectors]
        sliding = None if args.no_sliding else windows_rows(root, work, args.threads, args.reuse)
    hand_iou, curve = anchors_report(root, hand)
    text = body(rows, sliding, hand_iou, curve, len(hand), args.epochs, args.loaded, budget, args.reuse, args.trainer)
    write_section("detection", text, path=args.output)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
