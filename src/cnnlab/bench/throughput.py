"""Training throughput on one device: a tuned plain-PyTorch loop against cnnlab's train stage.

Both sides train the same CIFAR-style ResNet-18 (``resnet18`` with ``small_input=true``) at
3×32×32 on the same synthetic uint8 images held on the device, with the same batch, optimiser,
precision, memory format and GPU batch augmentation (:class:`~cnnlab.augment.gpu.BatchAugment`):

- **plain PyTorch**: a hand-written loop: a permutation on the device, gather, augment,
  normalise, autocast forward, backward, optimiser step;
- **cnnlab**: the train stage's code path: ``cnnlab.tasks.fit.build`` (Classifier +
  ImageFolderDataModule with ``trainer=gpu``'s speed options) through ``lightning.Trainer``,
  reading a prepared folder of the same images.

Each is timed over ``--steps`` optimiser steps after ``--warmup`` steps (compile, cuDNN autotune),
with the device synchronised at both ends, with augmentation on and then off.

    python -m cnnlab.bench.throughput                  # a CUDA GPU: batch 512, bf16, channels_last
    python -m cnnlab.bench.throughput --compile        # plus torch.compile on both sides
    python -m cnnlab.bench.throughput --device cpu --steps 3 --batch-size 8 --images 64   # CPU smoke run

Writes the ``throughput`` section of docs/BENCHMARKS.md (``--output`` to write elsewhere).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from cnnlab.augment.gpu import BatchAugment, to_unit_float
from cnnlab.bench.report import DEFAULT_PATH, bench_command, write_section

NUM_CLASSES = 10
SHAPE = (3, 32, 32)


def synthetic_images(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random uint8 images [n, 3, 32, 32] and balanced labels ``i mod 10``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *SHAPE), dtype=torch.uint8, generator=g), torch.arange(n) % NUM_CLASSES


def write_prepared(images: torch.Tensor, labels: torch.Tensor, root: Path) -> Path:
    """The images as a prepared folder (``cnnlab.data.prepare``); 1% (at least one per class) for
    validation, which the benchmark never runs."""
    from PIL import Image

    from cnnlab.data.prepare import SplitConfig, prepare_dataset

    items = ((f"{i:06d}", f"c{int(y)}", Image.fromarray(img.permute(1, 2, 0).numpy(), "RGB"))
             for i, (img, y) in enumerate(zip(images, labels)))
    val = max(0.01, NUM_CLASSES / len(images))
    prepare_dataset(items, root, SplitConfig(val=val, test=0.0), channels=3, name="synthetic")
    return root


def compose(prepared: Path, args: argparse.Namespace, augment: bool):
    """The train stage's config for this run: ``trainer=gpu`` with the benchmark's settings."""
    from cnnlab.stages._app import compose as compose_config

    overrides = ["trainer=gpu", "model=resnet18", "model.small_input=true", "augment=none", "data.image_size=32",
                 f"paths.prepared={prepared}", f"batch_size={args.batch_size}", f"optim={args.optim}",
                 f"trainer.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}",
                 f"trainer.precision={args.precision}", f"trainer.speed.compile={str(args.compile).lower()}"]
    if augment:  # CIFAR's augmentation mirrors, whatever the composed data set allows
        overrides.append("trainer.speed.gpu_augment.flip=true")
    else:
        overrides.append("trainer.speed.gpu_augment=null")
    return compose_config(*overrides)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_loop(cfg, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
               steps: int, warmup: int) -> float:
    """Images per second of a hand-written training loop with the settings of ``cfg``."""
    from hydra.utils import instantiate

    from cnnlab.models import create_model

    speed = cfg.trainer.speed
    # What lightning.Trainer(benchmark=...) sets process-wide: the same cuDNN autotuning on both sides
    torch.backends.cudnn.benchmark = bool(cfg.trainer.get("benchmark"))
    model = create_model("resnet18", num_classes=NUM_CLASSES, in_chans=3, small_input=True).to(device)
    memory_format = torch.channels_last if speed.channels_last else torch.contiguous_format
    model.to(memory_format=memory_format).train()
    if speed.compile:
        model.compile()
    optimizer = instantiate(cfg.optim)(model.parameters())
    augment = BatchAugment(**speed.gpu_augment) if speed.gpu_augment else None
    images, labels = images.to(device), labels.to(device)
    x = images.float().div_(255)
    mean, std = x.mean(dim=(0, 2, 3)).view(1, -1, 1, 1), x.std(dim=(0, 2, 3)).view(1, -1, 1, 1)
    del x
    g = torch.Generator(device=device).manual_seed(0)
    bf16 = str(cfg.trainer.precision).startswith("bf16")

    def step(idx: torch.Tensor) -> None:
        x = augment(images[idx], g) if augment else to_unit_float(images[idx])
        x = x.sub_(mean).div_(std).contiguous(memory_format=memory_format)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def batches():
        while True:
            perm = torch.randperm(len(images), device=device, generator=g)
            yield from perm.split(cfg.batch_size)

    return _timed(step, batches(), device, steps, warmup)


def _timed(step: Callable[[torch.Tensor], None], batches, device: torch.device, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        step(next(batches))
    _sync(device)
    start, seen = time.perf_counter(), 0
    for _ in range(steps):
        idx = next(batches)
        step(idx)
        seen += len(idx)
    _sync(device)
    return seen / (time.perf_counter() - start)


def cnnlab_path(cfg, device: torch.device, steps: int, warmup: int, root: Path) -> float:
    """Images per second of the train stage's code path (``fit.build`` + ``lightning.Trainer``)."""
    import warnings

    import lightning as L
    from hydra.utils import instantiate

    from cnnlab.tasks.fit import build, trainer_config

    class StepTimer(L.Callback):
        """Clock from the end of step ``warmup`` to the end of step ``warmup + steps``."""

        start = end = None
        seen = 0

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if self.start is not None and self.end is None:
                self.seen += len(batch[1])
            if trainer.global_step in (warmup, warmup + steps):
                _sync(device)
                if trainer.global_step == warmup:
                    self.start = time.perf_counter()
                else:
                    self.end = time.perf_counter()

    L.seed_everything(0, verbose=False)
    module, dm = build(cfg)
    timer = StepTimer()
    trainer = instantiate(trainer_config(cfg), max_steps=warmup + steps, limit_val_batches=0,
                          num_sanity_val_steps=0, callbacks=[timer], logger=False, enable_checkpointing=False,
                          enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(root))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        trainer.fit(module, datamodule=dm)
    return timer.seen / (timer.end - timer.start)


def measure(args: argparse.Namespace) -> list[tuple[str, float, float]]:
    """``[(augmentation label, plain img/s, cnnlab img/s)]`` with augmentation on, then off."""
    device = torch.device(args.device)
    images, labels = synthetic_images(args.images)
    rows = []
    with tempfile.TemporaryDirectory(prefix="cnnlab-throughput-") as tmp:
        prepared = write_prepared(images, labels, Path(tmp) / "prepared")
        for augment in (True, False):
            cfg = compose(prepared, args, augment)
            label = _augment_label(cfg.trainer.speed.gpu_augment)
            torch.manual_seed(0)
            plain = plain_loop(cfg, images, labels, device, args.steps, args.warmup)
            ours = cnnlab_path(cfg, device, args.steps, args.warmup, Path(tmp) / "lightning")
            print(f"augmentation {label}: plain {plain:,.0f} img/s, cnnlab {ours:,.0f} img/s, "
                  f"ratio {ours / plain:.3f}", flush=True)
            rows.append((label, plain, ours))
    return rows


def _augment_label(aug) -> str:
    if not aug:
        return "off"
    parts = (["flip"] if aug.flip else []) + ([f"crop (pad {aug.crop_padding})"] if aug.crop_padding else [])
    parts += [f"{k} ±{aug[k]}" for k in ("brightness", "contrast") if aug[k]]
    return "on: " + ", ".join(parts)


def format_table(rows: list[tuple[str, float, float]], args: argparse.Namespace) -> str:
    """Markdown section body, starting with its ``## `` title."""
    lines = [
        "## Training throughput: tuned plain PyTorch vs cnnlab's train stage",
        "",
        f"CIFAR-style ResNet-18 (`resnet18`, `small_input=true`) at 3×32×32, batch {args.batch_size}, "
        f"`{args.precision}`, channels_last, torch.compile {'on' if args.compile else 'off'}, optimiser "
        f"`optim={args.optim}`, on {args.device}. {args.images:,} synthetic uint8 images held on the device "
        f"(`trainer.speed.data_on_device`). Both sides in one process, timed over {args.steps} steps after "
        f"{args.warmup} warm-up steps, device synchronised at both ends; the Lightning side runs without "
        "progress bar and checkpointing. Ratio = cnnlab / plain "
        "(goal on a GPU: ≥ 0.95 with augmentation on).",
        "",
        "| GPU batch augmentation | plain PyTorch (img/s) | cnnlab train stage (img/s) | ratio |",
        "|---|---:|---:|---:|",
    ]
    for label, plain, ours in rows:
        lines.append(f"| {label} | {plain:,.0f} | {ours:,.0f} | {ours / plain:.3f} |")
    if args.device != "cuda":
        lines += ["", "CPU smoke run: these figures only show that both paths run. **GPU figures are still to "
                  "be measured**: on a CUDA machine run `python -m cnnlab.bench.throughput` (and again with "
                  "`--compile`)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnlab.bench.throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=50, help="timed optimiser steps per run")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (>= 1)")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--images", type=int, default=50_000, help="synthetic images (CIFAR-10's train size)")
    parser.add_argument("--precision", choices=("bf16-mixed", "32-true"),
                        help="default: bf16-mixed on CUDA, 32-true on CPU (most CPUs emulate bf16, slowly)")
    parser.add_argument("--optim", default="sgd", help="conf/optim name, the same on both sides")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model on both sides")
    parser.add_argument("--output", type=Path, default=DEFAULT_PATH, help="benchmarks markdown file")
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here (use --device cpu for a smoke run)")
    args.precision = args.precision or ("bf16-mixed" if args.device == "cuda" else "32-true")
    table = format_table(measure(args), args)
    print(table)
    command = bench_command("cnnlab.bench.throughput", argv)
    write_section("throughput", table, command=command, path=args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
