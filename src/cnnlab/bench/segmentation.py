"""Segmentation on the scenes: mIoU, Dice and CPU ms/image of U-Net variants trained on the same budget.

Trains, one after the other and with the same data, size, epochs, optimiser and augmentation:
the course's U-Net (``unet``), U-Net with a zoo encoder (``unet_backbone``), the no-skip
encoder-decoder baseline (``encoder_decoder``) and segmentation_models_pytorch's
``Unet(encoder_weights=None)`` (``smp_unet``); scores each on the scenes' test split with the
``evaluate_segmenter`` code, and writes the ``segmentation`` section of docs/BENCHMARKS.md.

    python -m cnnlab.bench.segmentation [--epochs 15] [--size 96] [--n-filters 16] [--batch-size 8] [--lr 0.002] [--loss ce]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

DEFAULT_MODELS = ("unet", "unet_backbone", "encoder_decoder", "smp_unet")
LOSSES = {"ce": "cross-entropy", "weighted_ce": "cross-entropy with median-frequency class weights",
          "dice": "soft Dice", "ce_dice": "cross-entropy + soft Dice"}


def _overrides(model: str, args: argparse.Namespace, work: Path) -> list[str]:
    width = [f"model.n_filters={args.n_filters}"] if model in ("unet", "encoder_decoder") else []
    width += [f"model.encoder_name={args.smp_encoder}"] if model == "smp_unet" else []
    return [f"model={model}", *width, f"trainer={args.trainer}", f"segmenter.size={args.size}", f"trainer.max_epochs={args.epochs}",
            f"segmenter.batch_size={args.batch_size}", f"segmenter.loss={args.loss}", f"optim.lr={args.lr}", "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false", f"num_workers={args.workers}", f"seed={args.seed}",
            f"paths.run={work / model / 'run'}", f"paths.report={work / model / 'report'}"]


def run_one(model: str, args: argparse.Namespace, work: Path) -> dict:
    """Train and evaluate one model; returns its scores, parameters and timings."""
    import torch

    from ..segment.evaluate import evaluate_segmenter
    from ..segment.train import fit
    from ..stages._app import compose

    cfg = compose(*_overrides(model, args, work), config_name="segment")
    t0 = time.perf_counter()
    trained = fit(cfg)
    train_s = time.perf_counter() - t0
    torch.set_num_threads(1)  # latency on one thread, comparable across machines and runs
    m = evaluate_segmenter(Path(cfg.paths.run) / "best.ckpt", cfg.paths.prepared, cfg.paths.report)
    torch.set_num_threads(args.threads)
    return {"model": model, "miou": m["miou"], "dice": m["dice"], "pixel_acc": m["pixel_acc"],
            "ms": m["ms_per_image"], "params": trained["num_params"], "train_s": train_s,
            "val_miou": trained["best_val_miou"], "iou": m["iou"]}


def table(rows: list[dict], classes: list[str]) -> str:
    """The markdown rows of the section."""
    lines = ["| model | test mIoU | Dice | pixel acc. | " + " | ".join(f"IoU {c}" for c in classes)
             + " | params | CPU ms/image (1 thread) | train s |",
             "|---|---:|---:|---:|" + "---:|" * len(classes) + "---:|---:|---:|"]
    for r in rows:
        if "missing" in r:  # a model that could not be built here: the row says why
            lines.append(f"| `{r['model']}` | {r['missing']} |" + " |" * (len(classes) + 5))
            continue
        ious = " | ".join(f"{r['iou'].get(c, float('nan')):.3f}" for c in classes)
        lines.append(f"| `{r['model']}` | {r['miou']:.3f} | {r['dice']:.3f} | {r['pixel_acc']:.3f} | {ious} | "
                     f"{r['params']:,} | {r['ms']:.1f} | {r['train_s']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--size", type=int, default=96, help="training side (scenes are 128×128)")
    parser.add_argument("--n-filters", type=int, default=16, help="first-level width of unet / encoder_decoder")
    parser.add_argument("--smp-encoder", default="resnet18", help="smp_unet's encoder (the zoo U-Net uses resnet18)")
    parser.add_argument("--batch-size", type=int, default=8, help="small batches: more updates per CPU second")
    parser.add_argument("--lr", type=float, default=0.002, help="Adam's learning rate (cosine decay to 0)")
    parser.add_argument("--loss", default="ce", choices=LOSSES, help="segmenter.loss of every model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--trainer", default="cpu", help="conf/trainer option to train on (gpu: a CUDA machine, for "
                        "longer budgets); evaluation and ms / image stay on CPU")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", default="", help="a sentence about the machine's load, put in the section")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs/BENCHMARKS.md alone")
    args = parser.parse_args(argv)

    import torch

    from ..segment.data import read_classes
    from .report import bench_command, write_section

    torch.set_num_threads(args.threads)
    prepared = Path("data/prepared") / "scenes"  # the pipeline's (paths.prepared of data=scenes)
    if not (prepared / "dataset.json").is_file():
        from ..stages._app import compose
        from ..stages.prepare import run as prepare

        prepare(compose("data=scenes"))
    classes = read_classes(prepared)
    rows = []
    with tempfile.TemporaryDirectory(prefix="cnnlab-bench-seg-") as tmp:
        for model in args.models.split(","):
            try:
                rows.append(run_one(model, args, Path(tmp)))
            except ImportError as e:  # smp_unet without the dev extra: the table says so
                rows.append({"model": model, "missing": f"not run: {e}".replace("|", "/").replace("\n", " ")})
            print(table(rows[-1:], classes).splitlines()[-1], flush=True)
    body = table(rows, classes)
    print(body)
    if args.no_write:
        return 0
    by = {r["model"]: r for r in rows}
    ratio = ""
    if "miou" in by.get("unet", {}) and "miou" in by.get("encoder_decoder", {}):
        ratio = (f"The skips: the course's U-Net reaches {by['unet']['miou']:.3f} mIoU, the same network without "
                 f"them {by['encoder_decoder']['miou']:.3f} ({by['unet']['miou'] - by['encoder_decoder']['miou']:+.3f}). ")
    text = (
        "## Segmentation: U-Net on the scenes\n\n"
        f"Trained one after the other on the scenes' 300 training images (128×128, resized to {args.size}×{args.size}), "
        f"{args.epochs} epochs each, batch {args.batch_size}, Adam {args.lr:g} with cosine decay, the default joint "
        f"augmentation, {LOSSES[args.loss]} loss; the checkpoint with the best validation mIoU (60 images) is scored on the "
        f"60 test images at their own 128×128 size. mIoU and Dice are means over the 6 classes, background "
        f"included (torchmetrics). `unet` and `encoder_decoder` are the course's architecture at "
        f"n_filters={args.n_filters}" + (f" (the course's 32 costs {(32 / args.n_filters) ** 2:.0f}× the compute, too much "
                                        f"for this budget)" if args.n_filters < 32 else "") + "; "
        f"`unet_backbone` is the zoo's resnet18 as encoder with the course's upsampling blocks; `smp_unet` is "
        f"segmentation_models_pytorch's `Unet(encoder_weights=None)` ({args.smp_encoder} encoder), from random weights like ours. "
        f"Latency: one image at {args.size}×{args.size}, one thread, median of 10. " + (f"Training used {args.threads} "
        f"thread{'s' if args.threads != 1 else ''}." if args.trainer == "cpu" else f"Trained with `trainer={args.trainer}`.") + f"\n\n{ratio}{args.note}\n\n{body}\n")
    write_section("segmentation", text, command=bench_command("cnnlab.bench.segmentation", argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
