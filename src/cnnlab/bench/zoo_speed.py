"""Zoo speed: cnnlab models against their torchvision counterparts, forward + backward.

For every registered model whose ``default_cfg`` names a ``torchvision`` builder, both networks are
built (torchvision with ``weights=None`` and ``default_cfg.get("tv_kwargs", {})``; ours with 1,000
classes), torchvision's freshly initialised weights are loaded into ours through
``load_torchvision_weights``, and both run on the same batch at the registered input size. The
eval-mode outputs are compared (max |difference|) to show the two compute the same function; then
train-mode forward + backward steps are timed alternately in one process (warm-up first, the order
flipping every repetition so neither side always runs on a warmer cache) and the medians compared.

    python -m cnnlab.bench.zoo_speed --models resnet18 mobilenet_v2 --repeats 10

Writes the ``zoo_speed`` section of docs/BENCHMARKS.md (``--output`` to write elsewhere).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from cnnlab.bench.report import DEFAULT_PATH, bench_command, write_section
from cnnlab.models import create_model, get_entry, list_models
from cnnlab.models.convert import load_torchvision_weights

_NUM_CLASSES = 1000  # torchvision's default head, so its whole state dict fits ours
_REFERENCE_PIXELS = 224 * 224


@dataclass
class SpeedResult:
    """One model's measurement; ``error`` is set (and the timings are None) if it could not run."""

    name: str
    tv_name: str
    input_size: tuple[int, ...]
    batch_size: int
    ours_ms: float | None = None
    tv_ms: float | None = None
    max_abs_diff: float | None = None
    error: str | None = None
    ours_min_ms: float | None = None
    tv_min_ms: float | None = None
    pair_ratio: float | None = None

    @property
    def ratio(self) -> float | None:
        """Ours / torchvision from the fastest step of each side: the figure least inflated by other
        processes on a shared machine (the same reason ``timeit`` reports minima)."""
        return self.ours_min_ms / self.tv_min_ms if self.ours_min_ms and self.tv_min_ms else None


def torchvision_models() -> list[str]:
    """Registered models that name a torchvision counterpart."""
    return [n for n in list_models() if get_entry(n).default_cfg.get("torchvision")]


def default_batch_size(input_size: tuple[int, ...], base: int = 8) -> int:
    """``base`` at 224×224 or below, scaled down by the pixel count for larger inputs (min 1)."""
    pixels = input_size[-1] * input_size[-2]
    return max(1, min(base, round(base * _REFERENCE_PIXELS / pixels)))


def _output_sum(out) -> torch.Tensor:
    """Sum of every tensor a model returns (auxiliary logits too), as a scalar to backpropagate."""
    if isinstance(out, torch.Tensor):
        return out.float().sum()
    return sum(_output_sum(o) for o in out if o is not None)


def _logits(out) -> torch.Tensor:
    return out if isinstance(out, torch.Tensor) else out[0]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed_step(model: nn.Module, x: torch.Tensor) -> float:
    """One forward + backward, in seconds; gradients are freed first so both sides allocate alike."""
    model.zero_grad(set_to_none=True)
    _sync(x.device)
    start = time.perf_counter()
    _output_sum(model(x)).backward()
    _sync(x.device)
    return time.perf_counter() - start


def build_pair(name: str, device: torch.device) -> tuple[nn.Module, nn.Module]:
    """Our model and torchvision's, holding the same (torchvision-initialised) weights."""
    import torchvision

    cfg = get_entry(name).default_cfg
    tv = torchvision.models.get_model(cfg["torchvision"], weights=None, num_classes=_NUM_CLASSES,
                                      **cfg.get("tv_kwargs", {}))
    ours = create_model(name, num_classes=_NUM_CLASSES, in_chans=cfg.get("input_size", (3,))[0])
    load_torchvision_weights(ours, tv.state_dict())
    return ours.to(device), tv.to(device)


def measure(name: str, batch_size: int | None, repeats: int, warmup: int, device: torch.device) -> SpeedResult:
    """Benchmark one registered model; failures are recorded in the result, not raised."""
    cfg = get_entry(name).default_cfg
    size = tuple(cfg.get("input_size", (3, 224, 224)))
    result = SpeedResult(name, cfg["torchvision"], size, batch_size or default_batch_size(size))
    try:
        torch.manual_seed(0)
        ours, tv = build_pair(name, device)
        x = torch.randn(result.batch_size, *size, device=device)
        with torch.no_grad():
            result.max_abs_diff = (_logits(ours.eval()(x)) - _logits(tv.eval()(x))).abs().max().item()
        ours.train()
        tv.train()
        for _ in range(warmup):
            _timed_step(ours, x)
            _timed_step(tv, x)
        times = {"ours": [], "tv": []}
        for rep in range(repeats):
            pairs = [("ours", ours), ("tv", tv)]
            for key, model in (pairs if rep % 2 == 0 else pairs[::-1]):
                times[key].append(_timed_step(model, x))
        result.ours_ms = 1e3 * statistics.median(times["ours"])
        result.tv_ms = 1e3 * statistics.median(times["tv"])
        result.ours_min_ms = 1e3 * min(times["ours"])
        result.tv_min_ms = 1e3 * min(times["tv"])
        # each repetition's two steps ran back to back, under the same load: the median of their ratios
        result.pair_ratio = statistics.median(o / t for o, t in zip(times["ours"], times["tv"]))
    except Exception as err:  # one broken family must not stop the rest of the zoo
        result.error = f"{type(err).__name__}: {err}".splitlines()[0][:200]
    return result


def format_table(results: list[SpeedResult], repeats: int, warmup: int, device: torch.device) -> str:
    """Markdown section body, starting with its ``## `` title."""
    lines = [
        "## Zoo speed: cnnlab vs torchvision (forward + backward)",
        "",
        f"Train mode, same weights in both, {repeats} interleaved steps per side after {warmup} warm-up "
        f"steps each, on {device.type} with {torch.get_num_threads()} thread(s); the order flips every "
        "repetition. **ours / tv (min)**: ratio of the fastest steps (least inflated by other processes); "
        "**(paired)**: median over repetitions of the ratio of the two back-to-back steps. Ratio < 1: ours is "
        "faster (goal ≤ 1.05). *Max |Δ|*: eval-mode logits, ours against torchvision's, on the same batch. "
        f"Load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores when the table was written.",
        "",
        "| model | torchvision | input | batch | ours median (ms) | torchvision median (ms) | ours / tv (min) "
        "| ours / tv (paired) | max abs Δ |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        shape = "×".join(map(str, r.input_size))
        if r.error:
            lines.append(f"| {r.name} | {r.tv_name} | {shape} | {r.batch_size} | failed: {r.error} | | | | |")
            continue
        lines.append(f"| {r.name} | {r.tv_name} | {shape} | {r.batch_size} | {r.ours_ms:.1f} | {r.tv_ms:.1f} "
                     f"| {r.ratio:.3f} | {r.pair_ratio:.3f} | {r.max_abs_diff:.1e} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnlab.bench.zoo_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", help="registry names (default: every model with a torchvision counterpart)")
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per model and side")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model and side")
    parser.add_argument("--batch-size", type=int, help="default: 8, fewer for inputs above 224×224")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--output", type=Path, default=DEFAULT_PATH, help="benchmarks markdown file")
    args = parser.parse_args(argv)
    available = torchvision_models()
    names = args.models or available
    unknown = [n for n in names if n not in available]
    if unknown:
        parser.error(f"no torchvision counterpart registered for {', '.join(unknown)}; "
                     f"choose from: {', '.join(available)}")
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    for name in names:
        results.append(measure(name, args.batch_size, args.repeats, args.warmup, device))
        r = results[-1]
        print(f"{name}: " + (r.error or f"ours {r.ours_ms:.1f} ms, torchvision {r.tv_ms:.1f} ms, ratio {r.ratio:.3f} (paired {r.pair_ratio:.3f})"),
              flush=True)
    table = format_table(results, args.repeats, args.warmup, device)
    print(table)
    command = bench_command("cnnlab.bench.zoo_speed", argv)
    write_section("zoo_speed", table, command=command, path=args.output)
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
