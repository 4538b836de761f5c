"""Levers of the from-scratch face encoder, judged on validation people of identity folds (issue 20).

Each lever changes one thing of the configured course39 recipe (conf/encoder/course39.yaml,
conf/face/default.yaml): the triplet miner, the embedding size, the objective (siamese binary
instead of triplet), the augmentation, longer cosine training, flip test-time augmentation, an
ensemble of seeds. Every variant is trained per fold on the fold's 12 training people, its
checkpoint chosen on the fold's 4 validation people (as in :mod:`cnnlab.bench.face_folds`), and
*ranked on the validation people only*; test figures are printed beside, never used to choose.

Without ``--fold`` or ``--collect`` one invocation runs every fold of ``--fold-ids`` in turn and
writes the ``face_levers`` section of docs/BENCHMARKS.md (the per-fold results land in ``--out``):

    python -m cnnlab.bench.face_levers                          # folds 0 1 2, one run, one table

The folds can also run as separate processes (``--fold i --out DIR``) to share the cores;
``--collect DIR`` then writes the table from their results:

    for i in 0 1 2; do python -m cnnlab.bench.face_levers --fold $i --out reports/faces/levers & done; wait
    python -m cnnlab.bench.face_levers --collect reports/faces/levers
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cnnlab.bench.report import DEFAULT_PATH, bench_command, write_section

# name → (Hydra overrides of the recipe, seeds, flip TTA); "base" is the configured recipe.
LEVERS: dict[str, tuple[tuple[str, ...], tuple[int, ...], bool]] = {
    "base (as configured)": ((), (0,), False),
    "miner: batch hard": (("face.encoder.miner=hard",), (0,), False),
    "miner: semi-hard, skip when none": (("face.encoder.miner=semi_hard_skip",), (0,), False),
    "embedding 64-d": (("face.encoder.embedding_dim=64",), (0,), False),
    "siamese binary objective": (("face.encoder.objective=binary",), (0,), False),
    "no augmentation": (("augment@face.augment=none",), (0,), False),
    "flip test-time augmentation": ((), (0,), True),
    "ensemble of 2 seeds": ((), (0, 1), False),
    "ensemble of 2 seeds + flip": ((), (0, 1), True),
    "longer cosine training (60 epochs)": (("face.train.max_epochs=60",), (0,), False),
}
NOT_IN_TABLE = ("longer cosine training", "wider or residual zoo encoders", "the PCA-colour faces policy",
                "softmax pre-training then triplet fine-tuning")


def run_fold(i: int, k: int, levers: list[str], out: Path) -> Path:
    """Train and score every lever on fold ``i``; writes ``out/fold<i>.json``."""
    from cnnlab.bench.face_folds import aligned_people, embed_paths, scratch_size, train_scratch
    from cnnlab.data.prepared_split import read_prepared
    from cnnlab.face.evaluation.folds import identity_folds, scores, write_fold

    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix=f"face_levers{i}_") as tmp:
        work = Path(tmp)
        aligned = aligned_people(work)
        meta, _ = read_prepared(aligned)
        fold = identity_folds(meta["classes"], k)[i]
        trained: dict[tuple, Path] = {}
        for name in levers:
            recipe, seeds, flip = LEVERS[name]
            small = write_fold(aligned, work / f"small-{'x'.join(map(str, scratch_size(list(recipe))))}", fold,
                               size=scratch_size(list(recipe)))
            _, rows = read_prepared(small)
            paths, labels = [small / r["path"] for r in rows], np.array([r["label"] for r in rows])
            start = time.perf_counter()
            members = []
            for seed in seeds:
                key = (recipe, seed)
                if key not in trained:
                    trained[key] = train_scratch(small, work / f"run{len(trained)}", list(recipe), seed)[0]
                members.append(embed_paths(trained[key], paths, flip))
            emb = members[0] if len(members) == 1 else np.concatenate(members, 1) / np.sqrt(len(members))
            result[name] = {"val": scores(emb, labels, fold["val"]), "test": scores(emb, labels, fold["test"]),
                            "seconds": round(time.perf_counter() - start, 1)}
            print(f"fold {i} {name}: val {result[name]['val']['rank1']:.3f}/{result[name]['val']['eer']:.3f} "
                  f"test {result[name]['test']['rank1']:.3f}/{result[name]['test']['eer']:.3f}", flush=True)
    path = out / f"fold{i}.json"
    path.write_text(json.dumps({"fold": fold, "index": i, "k": k, "levers": result}, indent=1) + "\n")
    return path


def collect(out: Path) -> tuple[str, str]:
    """``(markdown section, chosen lever)`` from every ``fold<i>.json`` under ``out``."""
    folds = [json.loads(p.read_text()) for p in sorted(out.glob("fold*.json"))]
    if not folds:
        raise FileNotFoundError(f"{out}: no fold<i>.json (run --fold i --out {out} first)")
    names = [n for n in LEVERS if all(n in f["levers"] for f in folds)]

    def mean(name: str, split: str, key: str) -> tuple[float, float]:
        v = [f["levers"][name][split][key] for f in folds]
        return float(np.mean(v)), float(np.std(v))

    chosen = min(names, key=lambda n: (mean(n, "val", "eer")[0], -mean(n, "val", "rank1")[0]))
    base = names[0]
    lines = ["| lever | val rank-1 | val EER | Δ val EER vs base | test rank-1 | test EER | test TAR @ FAR 1 % |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for n in names:
        vr, ve, tr, te, tt = (mean(n, "val", "rank1"), mean(n, "val", "eer"), mean(n, "test", "rank1"),
                              mean(n, "test", "eer"), mean(n, "test", "tar_at_far_1pct"))
        lines.append(f"| {n}{' **(chosen)**' if n == chosen else ''} | {vr[0]:.3f} ± {vr[1]:.3f} | "
                     f"{ve[0]:.3f} ± {ve[1]:.3f} | {ve[0] - mean(base, 'val', 'eer')[0]:+.3f} | "
                     f"{tr[0]:.3f} ± {tr[1]:.3f} | {te[0]:.3f} ± {te[1]:.3f} | {tt[0]:.3f} ± {tt[1]:.3f} |")
    used = ", ".join(f"fold {f['index']} (val {', '.join(f['fold']['val'])}; test {', '.join(f['fold']['test'])})"
                     for f in folds)
    section = "\n".join([
        "## Faces: levers of the from-scratch encoder, chosen on validation people (issue 20)", "",
        f"course39 variants, each changing one thing of the configured recipe, trained per fold on {used} of the "
        f"{folds[0]['k']} identity folds of `cnnlab.bench.face_folds` (12 training people each; crops stored at the "
        "39×39 input, see there). Mean ± std over these folds. Ranked by validation EER, then validation rank-1; "
        f"the test columns are shown, not used. Chosen on validation people: **{chosen}**.", "",
        *lines, "",
        "Not tried in this run (CPU budget of a shared 2-core machine): "
        + ", ".join(t for t in NOT_IN_TABLE if not any(n.startswith(t) for n in names)) + ".",
    ])
    return section, chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnlab.bench.face_levers", description=__doc__.splitlines()[0])
    parser.add_argument("--fold", type=int, help="run the levers on this fold")
    parser.add_argument("--folds", type=int, default=5, help="identity folds in all")
    parser.add_argument("--fold-ids", type=int, nargs="+", default=[0, 1, 2],
                        help="folds a whole run (no --fold, no --collect) trains on, one after the other")
    parser.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS), metavar="LEVER")
    parser.add_argument("--out", type=Path, default=Path("reports/faces/levers"), help="per-fold results")
    parser.add_argument("--collect", type=Path, metavar="DIR", help="write the table from DIR's fold results")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=DEFAULT_PATH, help="benchmarks markdown file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.collect:
        section, _ = collect(args.collect)
        load = os.getloadavg()[0]
        section += (f"\n\nLoad average (1 min) when collected: {load:.1f} on {os.cpu_count()} cores (other helpers' "
                    "jobs shared the machine; accuracies do not depend on it).")
        print(section)
        write_section("face_levers", section, command="python -m cnnlab.bench.face_levers --fold i (per fold), "
                      f"then --collect {args.collect}", path=args.output)
        return 0
    if args.fold is not None:
        run_fold(args.fold, args.folds, args.levers, args.out)
        return 0
    if any(not 0 <= i < args.folds for i in args.fold_ids):
        parser.error(f"--fold-ids must lie in 0..{args.folds - 1}, got {args.fold_ids}")
    start, load0 = time.perf_counter(), os.getloadavg()[0]
    for stale in args.out.glob("fold*.json"):           # the table is this run's folds only
        stale.unlink()
    for i in args.fold_ids:
        run_fold(i, args.folds, args.levers, args.out)
    section, _ = collect(args.out)
    section += (f"\n\nWhole command {(time.perf_counter() - start) / 60:.1f} min, every fold in this one run. "
                f"Load average (1 min) at the start / end: {load0:.1f} / {os.getloadavg()[0]:.1f} on "
                f"{os.cpu_count()} cores: other helpers' jobs shared the machine, so the time is an upper bound; "
                "the accuracies do not depend on it.")
    print(section)
    command = bench_command("cnnlab.bench.face_levers", argv)
    write_section("face_levers", section, command=command, path=args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
