"""The prepared device check: every GPU figure cnnlab wants, in one run of a few minutes.

1. Train-stage throughput against the tuned plain-PyTorch loop (:mod:`cnnlab.bench.throughput`):
   CIFAR-style ResNet-18 at 32×32, batch 512, GPU batch augmentation on; fp32 (NCHW) and
   bf16 + channels_last, each without and with ``torch.compile``.
2. Smoke runs with their training img/s, each through its task's real code path and
   ``trainer=gpu``: the localiser, the landmark regressor and the sliding-window classifier
   (tiny scenes), the U-Net (tiny masks) and style transfer (``style.device``).
3. ``trainer=ddp`` with ``devices=1``: the classifier's ``fit`` end to end.

    python -m cnnlab.bench.gpu_check                      # on the GPU machine (scripts/gpu_check.sh)
    python -m cnnlab.bench.gpu_check --device cpu --tiny  # CPU smoke run of every code path

Writes the ``gpu_check`` section of docs/BENCHMARKS.md (``--output`` to write elsewhere).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import torch

from cnnlab.bench.report import DEFAULT_PATH, bench_command, write_section

ORL = Path("data/raw/orl_faces")


class ImageClock(L.Callback):
    """Training images per second, from the end of the first batch (compile, autotune) to the last."""

    def __init__(self) -> None:
        self.start = self.end = None
        self.seen = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        now = time.perf_counter()
        if self.start is None:
            self.start = now
            return
        self.seen += len(batch[0]) if isinstance(batch, (list, tuple)) else len(batch)
        self.end = now

    def rate(self) -> str:
        """img/s formatted for the table; ``-`` when there was only one training batch to time."""
        return f"{self.seen / (self.end - self.start):,.0f}" if self.end else "- (one batch)"


def _trainer_overrides(args: argparse.Namespace, trainer: str = "gpu") -> list[str]:
    acc = "gpu" if args.device == "cuda" else "cpu"
    return [f"trainer={trainer}", f"trainer.accelerator={acc}", f"trainer.precision={args.precision}",
            "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def throughput_rows(args: argparse.Namespace, work: Path) -> list[list[str]]:
    """The four throughput settings, augmentation on, plain loop and train stage side by side."""
    from cnnlab.bench import throughput as tp

    images, labels = tp.synthetic_images(args.images)
    prepared = tp.write_prepared(images, labels, work / "tp_prepared")
    rows = []
    for precision, channels_last in (("32-true", False), (args.precision, True)):
        for compile_ in (False,) if args.tiny else (False, True):  # inductor on CPU takes minutes
            ns = SimpleNamespace(batch_size=args.batch_size, optim="sgd", device=args.device,
                                 precision=precision, compile=compile_)
            cfg = tp.compose(prepared, ns, augment=True)
            cfg.trainer.speed.channels_last = channels_last
            torch.manual_seed(0)
            plain = tp.plain_loop(cfg, images, labels, torch.device(args.device), args.steps, args.warmup)
            ours = tp.cnnlab_path(cfg, torch.device(args.device), args.steps, args.warmup, work / "tp_lightning")
            label = f"{precision}{' + channels_last' if channels_last else ''}{', compile' if compile_ else ''}"
            print(f"throughput {label}: plain {plain:,.0f} img/s, cnnlab {ours:,.0f} img/s", flush=True)
            rows.append([label, f"{plain:,.0f}", f"{ours:,.0f}", f"{ours / plain:.3f}"])
    return rows


def detection_smoke(args: argparse.Namespace, work: Path) -> list[list[str]]:
    """Localiser, landmarks and sliding windows on tiny scenes, one short fit each with trainer=gpu."""
    from cnnlab.detect import scenes
    from cnnlab.detect.tasks import train
    from cnnlab.stages._app import compose

    data = work / "scenes"
    n = 16 if args.tiny else 128
    scenes.generate(data, ORL, {"val_ids": 4, "test_ids": 4, "seed": 0},
                    scenes.SceneConfig(counts=(("train", n), ("val", 6), ("test", 2))), seed=0)
    epochs = 1 if args.tiny else 3
    cfg = compose(f"paths.prepared={data}", f"paths.localiser={work}/loc", f"paths.landmarks={work}/lm",
                  f"paths.windows={work}/win", *_trainer_overrides(args), f"localiser.max_epochs={epochs}",
                  f"landmarks.max_epochs={epochs}", f"windows.max_epochs={epochs}", config_name="detect")
    rows = detector_smoke(args, work, data)
    for task in ("localiser", "landmarks", "windows"):
        clock = ImageClock()
        metrics = train(cfg, task, callbacks=[clock])
        score = metrics["best_score"]
        rows.append([task, clock.rate(), "-" if score is None else f"{cfg[task].monitor} {score:.3g}"])
    return rows


def detector_smoke(args: argparse.Namespace, work: Path, data: Path) -> list[list[str]]:
    """YOLO and Faster R-CNN (issue 17, ``cnnlab.detect.train``) on the same scenes, where present."""
    import importlib.util

    if importlib.util.find_spec("cnnlab.detect.train") is None:
        print("gpu_check: no cnnlab.detect.train (issue 17's detectors) in this checkout: skipped", flush=True)
        return []
    from cnnlab.detect.train import train_detector
    from cnnlab.stages._app import compose

    rows = []
    for kind in ("yolo", "faster_rcnn"):
        cfg = compose(f"detector={kind}", f"paths.prepared={data}", f"paths.run={work}/{kind}",
                      *_trainer_overrides(args), f"detector.epochs={1 if args.tiny else 3}", "num_workers=0",
                      config_name="detect")
        clock = ImageClock()
        metrics = train_detector(cfg, callbacks=[clock])
        score = metrics.get("best_score")
        rows.append([f"detector={kind}", clock.rate(), "-" if score is None else f"mAP@0.5 {score:.3g}"])
    return rows


def unet_smoke(args: argparse.Namespace, work: Path) -> list[list[str]]:
    """The U-Net on a folder of synthetic masks, one short fit with trainer=gpu."""
    import numpy as np
    from PIL import Image

    from cnnlab.segment.train import fit
    from cnnlab.stages._app import compose

    src, side, n = work / "masks_src", 64, 16 if args.tiny else 64
    (src / "images").mkdir(parents=True)
    (src / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        img = rng.integers(0, 40, (side, side, 3)).astype(np.uint8)
        mask = np.zeros((side, side), np.uint8)
        y, x = rng.integers(2, side // 2, 2)
        mask[y:y + 16, x:x + 20] = 1
        img[mask == 1] = (220, 30, 30)
        Image.fromarray(img).save(src / "images" / f"s{i:02d}.png")
        Image.fromarray(mask).save(src / "masks" / f"s{i:02d}.png")
    (src / "classes.txt").write_text("ground\nbrick\n")
    epochs = 1 if args.tiny else 3
    cfg = compose("data=masks", f"data.root={src}", f"paths.prepared={work}/masks", f"paths.run={work}/unet",
                  *_trainer_overrides(args), f"trainer.max_epochs={epochs}", "segmenter.size=64",
                  "segmenter.batch_size=8", "num_workers=0", "model.n_filters=8" if args.tiny else "model.n_filters=32",
                  config_name="segment")
    clock = ImageClock()
    metrics = fit(cfg, callbacks=[clock])
    return [["unet", clock.rate(), f"val mIoU {metrics['best_val_miou']:.3g}"]]


def style_smoke(args: argparse.Namespace, work: Path) -> list[list[str]]:
    """A few Adam steps of style transfer with the random multi-scale network on the device."""
    from cnnlab.stages._app import compose, to_dict
    from cnnlab.style.run import run

    size, steps = (32, 3) if args.tiny else (256, 30)
    s = to_dict(compose(f"style.size={size}", f"style.steps={steps}", "style.frame_every=0",
                        f"style.device={args.device}", config_name="style"))["style"]
    s["steps"] = 1
    run(s, {}, progress=False)  # warm-up: cuDNN, allocator
    s["steps"] = steps
    start = time.perf_counter()
    result = run(s, {"result": work / "style.png"}, progress=False)
    per_step = (time.perf_counter() - start) / steps
    return [[f"style transfer ({size} px)", f"{1 / per_step:,.1f} steps/s", f"J {result.history[-1]['total']:.3g}"]]


def ddp_smoke(args: argparse.Namespace, work: Path) -> list[list[str]]:
    """The classifier's fit with trainer=ddp, devices=1: a real run that publishes its outputs."""
    from cnnlab.bench import throughput as tp
    from cnnlab.stages._app import compose
    from cnnlab.tasks.fit import fit

    images, labels = tp.synthetic_images(64 if args.tiny else 4096, seed=1)
    prepared = tp.write_prepared(images, labels, work / "ddp_prepared")
    cfg = compose("model=resnet18", "model.small_input=true", "data.image_size=32", f"paths.prepared={prepared}",
                  f"paths.run={work}/ddp", f"batch_size={min(args.batch_size, 64)}", "trainer.max_epochs=1",
                  *_trainer_overrides(args, "ddp"), "trainer.devices=1", "trainer.speed.gpu_augment.flip=true",
                  "num_workers=0")
    clock = ImageClock()
    metrics = fit(cfg, callbacks=[clock])
    published = sorted(p.name for p in (work / "ddp").iterdir())
    return [["classifier, trainer=ddp devices=1", clock.rate(), f"published {', '.join(published)}; "
             f"val acc {metrics['best_val_acc']:.3f}"]]


def _guarded(name: str, fn, *a) -> tuple[list[list[str]], str | None]:
    """Run one part; a failure becomes a line in the section instead of ending the whole check."""
    start = time.perf_counter()
    try:
        rows = fn(*a)
        print(f"gpu_check: {name} done in {time.perf_counter() - start:.1f} s", flush=True)
        return rows, None
    except Exception as e:  # noqa: BLE001 - one broken part must not cost the others' device time
        traceback.print_exc()
        return [], f"{name}: FAILED: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cnnlab.bench.gpu_check", description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tiny", action="store_true", help="tiny sizes: a CPU smoke run of every code path")
    p.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    p.add_argument("--output", type=Path, default=DEFAULT_PATH, help="benchmarks markdown file")
    p.add_argument("--note", default="", help="a sentence about the machine, put in the section")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here (use --device cpu --tiny for a smoke run)")
    args.precision = "bf16-mixed" if args.device == "cuda" else "32-true"
    args.batch_size, args.images, args.steps, args.warmup = (8, 64, 2, 1) if args.tiny else (512, 20_000, 30, 5)
    torch.set_float32_matmul_precision("high")
    with tempfile.TemporaryDirectory(prefix="cnnlab-gpu-check-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        parts = {name: _guarded(name, fn, args, work / name) for name, fn in (
            ("throughput", throughput_rows), ("detection", detection_smoke), ("unet", unet_smoke),
            ("style", style_smoke), ("ddp", ddp_smoke))}
    failures = [err for _, err in parts.values() if err]
    lines = ["## GPU check: throughput and smoke runs of every training task", "",
             f"One run of `scripts/gpu_check.sh` on {args.device}"
             f"{' (tiny sizes: a smoke run, the figures only show the code paths run)' if args.tiny else ''}. "
             f"{args.note}".rstrip(), "",
             f"Train-stage throughput, CIFAR-style ResNet-18 at 3×32×32, batch {args.batch_size}, GPU batch "
             f"augmentation on (flip, crop, brightness, contrast), {args.images:,} synthetic images on the device, "
             f"timed over {args.steps} steps after {args.warmup} warm-up steps; ratio = cnnlab / plain "
             "(goal ≥ 0.95).", ""]
    lines += _table(["setting", "plain PyTorch (img/s)", "cnnlab train stage (img/s)", "ratio"], parts["throughput"][0])
    lines += ["", f"Smoke runs through each task's code path with `trainer=gpu` "
              f"(precision {args.precision}); img/s from the end of the first training batch.", ""]
    smoke = parts["detection"][0] + parts["unet"][0] + parts["style"][0] + parts["ddp"][0]
    lines += _table(["task", "training speed", "result"], smoke)
    if args.device != "cuda":
        lines += ["", "**GPU figures are still to be measured**: run `scripts/gpu_check.sh` on a CUDA machine."]
    if failures:
        lines += ["", *[f"- {f}" for f in failures]]
    body = "\n".join(lines)
    print(body)
    command = bench_command("cnnlab.bench.gpu_check", argv)
    write_section("gpu_check", body, command=command, path=args.output)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
