"""Augmentation throughput: images per second of each ``conf/augment`` policy in one DataLoader
worker process on CPU, the way training applies it (``num_workers`` workers beside the model).

Inputs are uint8 tensors: 1×32×32 (the prepared digits' train split if ``data/prepared/digits``
exists, else synthetic) and synthetic 3×64×64. Policies with PCA colour get a decomposition
fitted on the RGB inputs. The first batch (worker start-up) is not timed.

    python -m cnnlab.bench.augment_throughput --images 2000

Writes the ``augment_throughput`` section of docs/BENCHMARKS.md (``--output`` to write elsewhere).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from cnnlab.augment import bind_pca_colour, fit_pca_colour
from cnnlab.augment.pca import iter_transforms, prepared_images
from cnnlab.bench.report import DEFAULT_PATH, bench_command, write_section

DIGITS = Path("data/prepared/digits")


class _Augmented(Dataset):
    def __init__(self, images: Sequence[torch.Tensor], policy: Callable):
        self.images, self.policy = images, policy

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.policy(self.images[i])


def inputs(n: int, seed: int = 0) -> dict[str, tuple[list[torch.Tensor], str]]:
    """``{shape label: (n uint8 images, where they came from)}``."""
    g = torch.Generator().manual_seed(seed)
    if (DIGITS / "manifest.csv").is_file():
        digits, source = list(prepared_images(DIGITS)), "prepared digits"
        digits = (digits * (n // len(digits) + 1))[:n]
    else:
        digits = list(torch.randint(0, 256, (n, 1, 32, 32), dtype=torch.uint8, generator=g))
        source = "synthetic"
    rgb = list(torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8, generator=g))
    return {"1×32×32": (digits, source), "3×64×64": (rgb, "synthetic")}


def load_policies(names: Sequence[str] | None) -> dict[str, Callable]:
    """Instantiate ``conf/augment/<name>.yaml`` policies through the real Hydra config."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from cnnlab.stages._app import conf_dir

    conf = conf_dir()
    names = names or sorted(p.stem for p in (conf / "augment").glob("*.yaml"))
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        # PCA policies get their decomposition bound below; the path only has to resolve
        return {name: instantiate(compose("config", [f"augment={name}", "++paths.augmented=unused"]).augment)
                for name in names}


def images_per_second(images: Sequence[torch.Tensor], policy: Callable, batch_size: int) -> float:
    """Throughput of one worker process applying ``policy``, first batch excluded."""
    loader = DataLoader(_Augmented(images, policy), batch_size=batch_size, num_workers=1)
    it = iter(loader)
    first = len(next(it))
    start = time.perf_counter()
    rest = sum(len(batch) for batch in it)
    return rest / (time.perf_counter() - start) if rest else float("nan")


def leaf_names(policy: Callable) -> str:
    """The distortions a policy applies, e.g. ``RandomHorizontalFlip, ChannelShift``."""
    leaves = [t for t in iter_transforms(policy) if not getattr(t, "transforms", None)]
    return ", ".join(type(t).__name__ for t in leaves)


def format_table(rows: list[tuple[str, str, dict[str, float]]], sources: dict[str, str], n: int, batch: int) -> str:
    """Markdown section body, starting with its ``## `` title."""
    shapes = list(sources)
    lines = [
        "## Augmentation throughput per DataLoader worker (CPU)",
        "",
        f"Images per second of one worker process (`num_workers=1`; PyTorch gives each worker one thread) "
        f"applying each `conf/augment` policy to {n} uint8 images, batch {batch}, first batch (worker "
        f"start-up) excluded. Inputs: " + "; ".join(f"{s}: {src}" for s, src in sources.items()) + ". "
        "Training with `num_workers=N` scales this up to N times, as long as there are cores to spare. "
        f"Load average at the start: {os.getloadavg()[0]:.1f} (other processes on these cores lower the figures).",
        "",
        "| policy | distortions | " + " | ".join(f"{s} (img/s)" for s in shapes) + " |",
        "|---|---|" + "---:|" * len(shapes),
    ]
    for name, leaves, rates in rows:
        lines.append(f"| {name} | {leaves} | " + " | ".join(f"{rates[s]:,.0f}" for s in shapes) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnlab.bench.augment_throughput",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--policies", nargs="+", help="conf/augment names (default: all)")
    parser.add_argument("--images", type=int, default=2000, help="images per policy and shape")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--output", type=Path, default=DEFAULT_PATH, help="benchmarks markdown file")
    args = parser.parse_args(argv)
    if args.images <= args.batch_size:
        parser.error("--images must exceed --batch-size (the first batch is not timed)")
    data = inputs(args.images)
    eig = fit_pca_colour(data["3×64×64"][0])
    rows = []
    for name, policy in load_policies(args.policies).items():
        bind_pca_colour(policy, *eig)
        rates = {shape: images_per_second(images, policy, args.batch_size) for shape, (images, _) in data.items()}
        rows.append((name, leaf_names(policy), rates))
        print(f"{name}: " + ", ".join(f"{s} {r:,.0f} img/s" for s, r in rates.items()), flush=True)
    table = format_table(rows, {s: src for s, (_, src) in data.items()}, args.images, args.batch_size)
    print(table)
    command = bench_command("cnnlab.bench.augment_throughput", argv)
    write_section("augment_throughput", table, command=command, path=args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
