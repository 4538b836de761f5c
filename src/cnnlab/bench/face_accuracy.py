"""Face accuracy on people never used in training, and encoding throughput.

1. The default pipeline's held-out report (``reports/faces/metrics.json``, from ``evaluate_faces``):
   one-shot rank-1 and EER of the encoder and of every baseline on the test people.
2. ``--splits K``: the same recipe on K other identity splits of ORL (``data.split.seed`` 1..K),
   trained, encoded and evaluated here in-process: with 4 test people a single split is a small
   sample, so the spread across splits is reported beside it.
3. Encoding throughput of the default encoder (batch 64): faces/s from image files (decode,
   resize, forward) and for the forward pass alone, with 1 and with all CPU threads.

    python -m cnnlab.bench.face_accuracy --splits 5

Writes the ``face_accuracy`` section of docs/BENCHMARKS.md (``--output`` to write elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torchvision.transforms import v2

from cnnlab.bench.report import DEFAULT_PATH, write_section
from cnnlab.data.images import load_image, scan_image_folder
from cnnlab.data.prepare import SplitConfig, folder_source, prepare_dataset
from cnnlab.face.embedder import load_encoder
from cnnlab.face.encodings import (embed_images, encode_with_checkpoint, encoder_input, image_transform,
                                   load_encodings, save_encodings)
from cnnlab.face.evaluate import run_evaluation
from cnnlab.face.gallery import calibrate, save_threshold
from cnnlab.face.train import fit_encoder

METHODS = ("encoder", "raw_pixels", "eigenfaces", "fisherfaces", "lbp")
NAMES = {"encoder": "learned encoder", "raw_pixels": "raw pixels", "eigenfaces": "Eigenfaces",
         "fisherfaces": "Fisherfaces", "lbp": "LBP histograms"}


def compose(*overrides: str) -> DictConfig:
    """The repository's Hydra config with ``overrides`` (face and encoder groups are in its defaults)."""
    from cnnlab.stages._app import compose as compose_config

    return compose_config(*overrides)


def per_method(metrics: dict) -> dict[str, dict[str, float]]:
    """``{method: test metrics}`` of an ``evaluate_faces`` metrics.json."""
    return {"encoder": metrics["encoder"]["test"]} | {k: v["test"] for k, v in metrics["baselines"].items()}


def run_split(seed: int, work: Path) -> dict:
    """Prepare ORL with identity-split ``seed``, train the default recipe, evaluate; returns metrics.json."""
    root = work / f"split{seed}"
    prepared = root / "prepared"
    cfg = compose(f"data={compose().face.datasets.ids}", f"face.paths.prepared={prepared}",
                  f"face.paths.run={root}/model", "num_workers=0", "trainer.enable_progress_bar=false",
                  "trainer.enable_model_summary=false")
    split = SplitConfig(**(OmegaConf.to_container(cfg.data.split) | {"seed": seed}))
    prepare_dataset(folder_source(cfg.data.root, "L"), prepared, split, channels=1, name=cfg.data.name)
    fit_encoder(cfg)
    ckpt = root / "model" / "best.ckpt"
    paths = {s: save_encodings(root / f"{s}.npz", encode_with_checkpoint(ckpt, prepared / s)) for s in ("val", "test")}
    save_threshold(paths["test"], calibrate(load_encodings(paths["val"]), cfg.face.calibrate.target_far))
    return run_evaluation(paths["test"], paths["val"], ckpt, prepared, root / "report",
                          OmegaConf.to_container(cfg.face.evaluate, resolve=True))


def throughput(ckpt: Path, image_dir: Path, repeats: int = 3) -> list[tuple[int, float, float]]:
    """``(threads, faces/s from files, faces/s forward only)`` for 1 and all threads."""
    embedder, hp = load_encoder(ckpt)
    mode, size, norm = encoder_input(hp)
    paths = [p for p, _ in scan_image_folder(image_dir)]
    tf = image_transform(size, norm)
    x = torch.stack([tf(v2.functional.pil_to_tensor(load_image(p, mode))) for p in paths])
    rows = []
    for threads in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(threads)
        files = _best_rate(lambda: embed_images(embedder, paths, mode, size, norm, batch_size=64), len(paths), repeats)
        with torch.inference_mode():
            fwd = _best_rate(lambda: [embedder(x[s:s + 64]) for s in range(0, len(x), 64)], len(x), repeats)
        rows.append((threads, files, fwd))
    return rows


def _best_rate(fn, n: int, repeats: int) -> float:
    fn()                                                 # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return n / statistics.median(times)


def format_section(default: dict, splits: list[dict], rates: list, train: dict, load: float) -> str:
    methods = per_method(default)
    s = default["split"]
    lines = [
        "## Face accuracy on people never used in training (ORL)", "",
        f"Default pipeline (`evaluate_faces`, reports/faces/report.md): encoder `{default['encoder']['name']}` "
        f"trained on {len(s['train'])} people in {train.get('train_seconds', '?')} s ({train.get('epochs', '?')} "
        f"epochs, checkpoint of epoch {train.get('best_epoch', '?')} chosen on the {len(s['val'])} validation "
        f"people {', '.join(s['val'])}); scored on the {len(s['test'])} test people {', '.join(s['test'])} "
        f"({methods['encoder']['n_images']} images, {methods['encoder']['n_genuine']} genuine and "
        f"{methods['encoder']['n_impostor']} impostor pairs). One-shot rank-1 averages over every choice of "
        "enrolled image; baselines' hyper-parameters were chosen on the validation people. Goal: rank-1 ≥ 0.95, "
        "EER ≤ 0.03.", "",
    ]
    header = "| method | rank-1 | EER | TAR @ FAR 1% |"
    rule = "|---|---:|---:|---:|"
    if splits:
        header += f" rank-1 over {len(splits)} other splits | EER over {len(splits)} other splits |"
        rule += "---:|---:|"
    lines += [header, rule]
    for m in METHODS:
        t = methods[m]
        row = f"| {NAMES[m]} | {t['rank1']:.3f} | {t['eer']:.3f} | {t['tar_at_far_1pct']:.3f} |"
        if splits:
            r1 = [per_method(x)[m]["rank1"] for x in splits]
            eer = [per_method(x)[m]["eer"] for x in splits]
            row += (f" {np.mean(r1):.3f} ± {np.std(r1):.3f} (min {min(r1):.3f}) | "
                    f"{np.mean(eer):.3f} ± {np.std(eer):.3f} (max {max(eer):.3f}) |")
        lines.append(row)
    if splits:
        lines += ["", "Other splits: `data.split.seed` = " + ", ".join(str(i + 1) for i in range(len(splits)))
                  + " (4 validation and 4 test people each, the rest for training); mean ± standard deviation."]
    lines += ["", "Encoding throughput (batch 64, the default encoder, the 200 ORL images; median of 3 passes):", "",
              "| CPU threads | faces/s from files (decode + resize + forward) | faces/s forward only |",
              "|---:|---:|---:|"]
    lines += [f"| {t} | {files:,.0f} | {fwd:,.0f} |" for t, files, fwd in rates]
    lines += ["", f"Load average at the start: {load:.1f} (other processes on these cores lower the figures)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnlab.bench.face_accuracy", description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=0, help="other identity splits to train and evaluate on")
    parser.add_argument("--output", type=Path, default=DEFAULT_PATH, help="benchmarks markdown file")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    cfg = compose()
    report = Path(cfg.face.paths.reports) / "metrics.json"
    if not report.is_file():
        parser.error(f"{report} not found: run the default pipeline (evaluate_faces) first")
    default = json.loads(report.read_text())
    train_metrics = Path(cfg.face.paths.run) / "metrics.json"
    train = json.loads(train_metrics.read_text()) if train_metrics.is_file() else {}
    splits = []
    with tempfile.TemporaryDirectory(prefix="face_accuracy_") as work:
        for seed in range(1, args.splits + 1):
            splits.append(run_split(seed, Path(work)))
            print(f"split {seed}: " + ", ".join(f"{m} rank-1 {v['rank1']:.3f} EER {v['eer']:.3f}"
                                                for m, v in per_method(splits[-1]).items()), flush=True)
    rates = throughput(Path(cfg.face.paths.encoder), Path(compose(f"data={cfg.face.datasets.ids}").data.root))
    section = format_section(default, splits, rates, train, load)
    print(section)
    command = " ".join(["python -m cnnlab.bench.face_accuracy", *(sys.argv[1:] if argv is None else argv)])
    write_section("face_accuracy", section, command=command, path=args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
