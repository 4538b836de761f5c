"""Week 3, part 1 on the scenes: sliding windows naive vs convolutional, localisation, landmarks.

Three sections of docs/BENCHMARKS.md from one run:

* ``sliding_windows``: the same windows of the same test images classified three ways — naive one
  crop at a time (the course's description), naive with all crops of an image in one batch, and
  the convolutional twin run once per scale (its first FC-as-convolution strides over the pooled map
  for strides above 2) — at several strides, on 1 and 2 threads: windows per
  image, ms per image, speed-up of the convolutional implementation, largest logit difference.
* ``localisation``: the localiser trained with each loss (course, logistic) for ``--epochs`` on
  the train crops; accuracy, localisation accuracy and mean IoU on the test crops.
* ``landmarks``: NME of the regressor (trained for ``--epochs``), dlib's 5-point predictor and
  the mean shape on the test faces.

The window classifier is the default pipeline's (``models/scenes/windows/course/best.ckpt``;
speed does not depend on its weights). Needs ``data/prepared/scenes``.

    python -m cnnlab.bench.detect_systems --images 6 --epochs 30
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from pathlib import Path

import torch

from cnnlab.bench.report import DEFAULT_PATH, write_section

SECTIONS = ("sliding_windows", "localisation", "landmarks")


def _time(fn, repeat: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def sliding(cfg, n_images: int, strides: list[int]) -> str:
    from cnnlab.detect.data import DetectionDataset
    from cnnlab.detect.tasks import load
    from cnnlab.detect.windows import WindowClassifier, conv_windows, naive_windows, to_convolutional

    ckpt = Path(cfg.paths.windows) / "best.ckpt"
    if ckpt.is_file():
        module = load(ckpt, "windows")
        fc, hp, source = module.model.eval(), module.hparams, f"`{ckpt}`"
    else:
        fc, hp, source = WindowClassifier(6).eval(), {"sizes": list(cfg.windows.sizes), "normalization": None}, \
            "random weights (no trained checkpoint)"
    conv = to_convolutional(fc)
    fc64 = copy.deepcopy(fc).double()
    conv64 = to_convolutional(fc64)
    ds = DetectionDataset(cfg.paths.prepared, "test")
    norm = hp["normalization"] or {"mean": [0.5] * 3, "std": [0.25] * 3}
    mean, std = torch.tensor(norm["mean"]).view(-1, 1, 1), torch.tensor(norm["std"]).view(-1, 1, 1)
    images = [(ds[i][0].float() / 255 - mean) / std for i in range(min(n_images, len(ds)))]
    sizes = list(hp["sizes"])
    load = os.getloadavg()[0]
    rows = []
    for stride in strides:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            count = sum(naive_windows(fc, images[0], sizes, stride).counts)
            diff = max(float((naive_windows(fc, x, sizes, stride).logits - conv_windows(conv, x, sizes, stride).logits)
                             .abs().max()) for x in images)
            diff64 = max(float((naive_windows(fc64, x.double(), sizes, stride).logits
                                - conv_windows(conv64, x.double(), sizes, stride).logits).abs().max()) for x in images)
            seq = _time(lambda: naive_windows(fc, images[0], sizes, stride, batch=1), 1)
            batched = sum(_time(lambda x=x: naive_windows(fc, x, sizes, stride), 2) for x in images) / len(images)
            fast = sum(_time(lambda x=x: conv_windows(conv, x, sizes, stride), 3) for x in images) / len(images)
            rows.append(f"| {stride} | {threads} | {count:,} | {1000 * seq:,.1f} | {1000 * batched:,.1f} | "
                        f"{1000 * fast:,.1f} | {seq / fast:,.1f}× | {batched / fast:,.1f}× | {diff:.1e} | {diff64:.1e} |")
    return "\n".join([
        "## Sliding windows: naive vs convolutional (issue 16, CPU)",
        "",
        f"The course's window classifier (14×14×3 → CONV 5×5×16 → POOL → FC 400 → FC 400 → 6) and its "
        f"convolutional twin with the same weights ({source}), on {len(images)} test scenes (128×128) at window "
        f"sizes {sizes} px. Stride in pixels of the rescaled image (×size/14 in the scene). *Naive, one by one*: "
        "every crop through the classifier separately, as the course describes it (timed on the first image); "
        "*naive, batched*: all of an image's crops in one batch; *conv*: the twin once per scale (for strides above 2 its first FC-as-convolution steps by stride/2, so skipped windows are never computed). Speed-ups are "
        "measured side by side in this run. Max abs diff is the largest logit difference between naive and "
        "convolutional over every window, with the weights in float32 and in float64 (the same computation "
        f"up to rounding). Load average at the start: {load:.1f} on {os.cpu_count()} cores (other processes on "
        "these cores inflate the absolute times; the speed-ups compare timings taken side by side"
        + ("; with the load above the core count the 2-thread rows mostly measure contention, rerun on an "
           "idle machine for them)." if load > (os.cpu_count() or 1) else ")."),
        "",
        "| stride | threads | windows / image | naive, one by one (ms) | naive, batched (ms) | conv (ms) | "
        "speed-up vs one by one | vs batched | max abs diff (float32) | (float64) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ])


def _train_eval(cfg, task: str, overrides: dict, out: Path) -> dict:
    from omegaconf import OmegaConf

    from cnnlab.detect import evaluate
    from cnnlab.detect.tasks import train

    cfg = OmegaConf.merge(cfg, OmegaConf.create(overrides))
    OmegaConf.update(cfg, f"paths.{task}", str(out / task))
    OmegaConf.update(cfg, "paths.reports", str(out / "reports"))
    t0 = time.perf_counter()
    fit = train(cfg, task)
    metrics = getattr(evaluate, f"evaluate_{task}")(cfg)
    return metrics | {"seconds": time.perf_counter() - t0, "epochs": fit["epochs"], "n_train": fit["n_train_crops"]}


def localisation(cfg, epochs: int, out: Path) -> str:
    rows = []
    for loss in ("course", "logistic"):
        m = _train_eval(cfg, "localiser", {"localiser": {"loss": loss, "max_epochs": epochs}}, out / loss)
        rows.append(f"| {loss} | {m['accuracy']:.3f} | {m['object_accuracy']:.3f} | {m['localisation_accuracy']:.3f} | "
                    f"{m['mean_iou']:.3f} | {m['n_crops']} ({m['n_objects']} objects) | {m['seconds']:.0f} |")
    return "\n".join([
        "## Classification with localisation on the scenes (issue 16)",
        "",
        f"LeNet-5 backbone (`model={cfg.model.name}`) + a 5 + 5-output head, y = (p_c, b_x, b_y, b_h, b_w, "
        f"c_1..c_5), trained {epochs} epochs on single-object and background crops of the train scenes with each "
        "loss, scored on the test scenes' crops. Accuracy: the right class or background (p_c < 0.5) over all "
        "crops; object accuracy: the right class on object crops; localisation accuracy: right class and "
        "IoU ≥ 0.5; mean IoU over object crops. Training time includes cutting the crops "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} shared cores).",
        "",
        "| loss | accuracy | object accuracy | localisation accuracy | mean IoU | test crops | train + eval (s) |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
    ])


def landmarks(cfg, epochs: int, out: Path) -> str:
    m = _train_eval(cfg, "landmarks", {"landmarks": {"max_epochs": epochs}}, out / "landmarks")
    rows = [f"| {name} | {m[f'nme_{key}']:.3f} | {m[f'nme_{key}_median']:.3f} |"
            for name, key in (("cnnlab regressor (LeNet-5)", "regressor"), ("dlib 5-point predictor", "dlib"),
                              ("mean shape", "mean_shape"))]
    return "\n".join([
        "## Landmarks on the scenes' faces (issue 16)",
        "",
        f"Normalised mean error (mean point distance / inter-ocular distance) of the 5 landmarks on the "
        f"{m['n_faces']} test faces (ORL people never used in training), crops of 1.05–1.25× the face box. The "
        f"regressor: LeNet-5 on 32×32 crops, {epochs} epochs on {m['n_train']} training faces. dlib's predictor "
        "runs on the scene with the true face box. The mean shape: the training faces' mean landmarks. The "
        "ground truth is dlib's fit on the unrotated ORL photo carried through the paste transform, so dlib "
        "is scored against its own output on the original photo.",
        "",
        "| method | NME (mean) | NME (median) |",
        "|---|---:|---:|",
        *rows,
    ])


def main(argv: list[str] | None = None) -> None:
    from cnnlab.stages._app import compose

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=6, help="test scenes timed")
    p.add_argument("--strides", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--epochs", type=int, default=30, help="training epochs of the localiser and the regressor")
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="sections to measure")
    p.add_argument("--output", default=str(DEFAULT_PATH))
    args = p.parse_args(argv)
    cfg = compose("trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", config_name="detect")
    if not (Path(cfg.paths.prepared) / "dataset.json").is_file():
        raise SystemExit(f"{cfg.paths.prepared}: not prepared (python -m cnnlab.stages.prepare data=scenes)")
    if "sliding_windows" in args.only:
        write_section("sliding_windows", sliding(cfg, args.images, args.strides), path=args.output)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        if "localisation" in args.only:
            write_section("localisation", localisation(cfg, args.epochs, Path(tmp)), path=args.output)
        if "landmarks" in args.only:
            write_section("landmarks", landmarks(cfg, args.epochs, Path(tmp)), path=args.output)


if __name__ == "__main__":
    main()
