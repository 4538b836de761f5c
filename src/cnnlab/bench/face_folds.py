"""Faces on k identity folds of the 20 embedded people (issue 20): every person is a test person once.

For each fold (:func:`cnnlab.face.evaluation.folds.identity_folds`: 4 test, 4 validation, 12 training
people) the hand-engineered baselines are fitted on the training people with their
hyper-parameters chosen on the validation people, the from-scratch encoder (``encoder=course39``,
its configured recipe plus ``--recipe`` overrides) is trained on the training people with its
checkpoint chosen on the validation people, and dlib's network is used as is. The from-scratch
encoder trains on copies of the aligned crops stored at its input size (39×39): its
augmentation then transforms the pixels it sees, not the 150×150 crops (≈ 15× less CPU; the
pipeline's ``train_encoder`` augments the 150×150 crops, then resizes). Reported: mean ±
standard deviation over folds of one-shot rank-1 (4-way), EER and TAR at FAR 1 % on the test
people, the same on the validation people (what recipes are chosen by), and the pooled 20-way
rank-1 (:func:`cnnlab.face.evaluation.folds.nway_rank1`).

    python -m cnnlab.bench.face_folds                  # writes the face_folds section of docs/BENCHMARKS.md
    python -m cnnlab.bench.face_folds --folds 5 --recipe face.train.max_epochs=60
    python -m cnnlab.bench.face_folds --seeds 0 1 --flip     # + flip TTA and the 2-seed ensemble (the chosen recipe)

Also writes ``reports/faces/folds.json`` and the fold table into ``reports/faces/comparison.md``
(a section appended below the pipeline's table when that file exists). Needs the aligned data
set ``data/aligned/orl_faces_ids`` (``align_faces``; made here in a temporary folder otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from omegaconf import OmegaConf

from cnnlab.bench.report import DEFAULT_PATH, bench_command, write_section

BASELINES = {"eigenfaces": "Eigenfaces", "fisherfaces": "Fisherfaces", "lbp": "LBP histograms",
             "raw_pixels": "raw pixels"}
MARK_BEGIN, MARK_END = "<!-- folds -->", "<!-- /folds -->"


def compose(*overrides: str):
    """The face stages' Hydra config (``conf/faces.yaml``) with ``overrides``."""
    from cnnlab.stages._app import compose as compose_config

    return compose_config(*overrides, config_name="faces")


def aligned_people(work: Path) -> Path:
    """The aligned 20 people: the pipeline's ``face.paths.identity_split``, else aligned here."""
    cfg = compose()
    aligned = Path(cfg.face.paths.identity_split)
    if (aligned / "manifest.csv").is_file():
        return aligned
    from cnnlab.data.prepare import SplitConfig, folder_source, prepare_dataset
    from cnnlab.face.detection.aligned_data import align_prepared

    data = compose(f"data={cfg.face.datasets.ids}").data
    prepared = work / "prepared"
    prepare_dataset(folder_source(data.root, "L"), prepared, SplitConfig(**OmegaConf.to_container(data.split)),
                    channels=1, name=data.name)
    a = cfg.face.align
    align_prepared(prepared, work / "aligned", a.detector, a.upsample, a.size, a.padding, a.no_face)
    return work / "aligned"


def embed_paths(ckpt: Path, paths: Sequence[Path], flip: bool = False) -> np.ndarray:
    """Unit embeddings of aligned crops; ``flip``: averaged with the mirrored crop's, re-normalised."""
    from cnnlab.face.models.embedder import load_encoder
    from cnnlab.face.gallery.encodings import embed_images, encoder_input

    embedder, hp = load_encoder(ckpt)
    mode, size, norm = encoder_input(hp)
    emb = embed_images(embedder, list(paths), mode, size, norm)
    if flip:
        mirrored = embed_images(lambda x: embedder(torch.flip(x, dims=[3])), list(paths), mode, size, norm)
        emb = emb + mirrored
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return emb.astype(np.float32)


def baseline_embeddings(fold_dir: Path, ecfg: dict[str, Any]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Each baseline fitted on the fold's training people, chosen on its validation people (lowest
    EER, then rank-1, as ``evaluate_faces`` chooses): ``({name: embeddings of every image}, labels)``."""
    from cnnlab.face.evaluation.baselines import load_gray
    from cnnlab.face.evaluation.heldout import baseline_candidates, load_splits
    from cnnlab.face.evaluation.folds import scores

    splits = load_splits(fold_dir)
    order = ("train", "val", "test")
    labels = np.concatenate([splits[s].labels for s in order])
    paths = [p for s in order for p in splits[s].paths]
    n_train = len(splits["train"].paths)
    out = {}
    for res, size in (("small", tuple(ecfg["baseline_size"])), ("full", None)):
        images = load_gray(paths, size)
        for name, candidates in baseline_candidates(ecfg).items():
            if (name == "lbp") != (res == "full"):
                continue
            best = None
            for _, method in candidates:
                method.fit(images[:n_train], labels[:n_train])
                emb = method.embed(images)
                val = scores(emb, labels, sorted(set(splits["val"].labels)))
                key = (val["eer"], -val["rank1"])
                if best is None or key < best[0]:
                    best = (key, emb)
            out[name] = best[1]
    return out, labels


def scratch_size(recipe: Sequence[str]) -> tuple[int, int]:
    """The (H, W) input of the from-scratch encoder under ``recipe``."""
    return tuple(compose("encoder=course39", *recipe).face.encoder.input_size)


def train_scratch(fold_dir: Path, run: Path, recipe: Sequence[str], seed: int) -> tuple[Path, dict[str, Any]]:
    """course39 (with ``recipe`` overrides) trained on the fold's training people."""
    from cnnlab.face.training.train import fit_encoder

    cfg = compose("encoder=course39", f"face.paths.prepared={fold_dir}", f"face.paths.run={run}", f"seed={seed}",
                  "num_workers=0", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
                  *recipe)
    metrics = fit_encoder(cfg)
    return run / "best.ckpt", metrics


def run_folds(aligned: Path, work: Path, k: int, recipe: Sequence[str], seeds: Sequence[int], flip: bool,
              dlib: Path | None) -> dict[str, Any]:
    """Every method on every fold: ``{"folds": [...], "methods": {name: {"test", "val", "nway"}}}``."""
    from cnnlab.data.prepared_split import read_prepared
    from cnnlab.face.evaluation.heldout import load_splits
    from cnnlab.face.evaluation.folds import identity_folds, nway_rank1, scores, summarize, write_fold

    ecfg = OmegaConf.to_container(compose().face.evaluate, resolve=True)
    meta, _ = read_prepared(aligned)
    folds = identity_folds(meta["classes"], k)
    per: dict[str, dict[str, list]] = {}
    timing: dict[str, float] = {}

    def add(name: str, emb: np.ndarray, labels: np.ndarray, fold: dict[str, list[str]]) -> None:
        rec = per.setdefault(name, {"test": [], "val": [], "nway": []})
        rec["test"].append(scores(emb, labels, fold["test"]))
        rec["val"].append(scores(emb, labels, fold["val"]))
        rec["nway"].append(nway_rank1(emb, labels, fold["test"]))

    dlib_emb = None
    for i, fold in enumerate(folds):
        fold_dir = write_fold(aligned, work / f"fold{i}", fold)
        splits = load_splits(fold_dir)
        paths = [p for s in ("train", "val", "test") for p in splits[s].paths]
        labels = np.concatenate([splits[s].labels for s in ("train", "val", "test")])
        start = time.perf_counter()
        base, base_labels = baseline_embeddings(fold_dir, ecfg)
        timing["baselines"] = timing.get("baselines", 0.0) + time.perf_counter() - start
        for name, emb in base.items():
            add(BASELINES[name], emb, base_labels, fold)
        if dlib is not None:
            if dlib_emb is None:                                   # one network for every fold: embed once
                start = time.perf_counter()
                by_name = dict(zip((p.name + p.parent.name for p in paths), embed_paths(dlib, paths)))
                timing["dlib_resnet"] = time.perf_counter() - start
                dlib_emb = by_name
            add("dlib_resnet (as is)", np.stack([dlib_emb[p.name + p.parent.name] for p in paths]), labels, fold)
        small = write_fold(aligned, work / f"fold{i}-small", fold, size=scratch_size(recipe))
        small_paths = [small / p.relative_to(fold_dir) for p in paths]
        members = []
        for seed in seeds:
            start = time.perf_counter()
            ckpt, _ = train_scratch(small, work / f"fold{i}-course39-seed{seed}", recipe, seed)
            timing["course39 training"] = timing.get("course39 training", 0.0) + time.perf_counter() - start
            members.append(embed_paths(ckpt, small_paths, flip))
            if seed == seeds[0]:
                if flip:                                             # the configured recipe alone, beside its TTA
                    add("course39", embed_paths(ckpt, small_paths), labels, fold)
                add("course39" + (" + flip" if flip else ""), members[-1], labels, fold)
        if len(seeds) > 1:                                           # concatenated / √N: averaged squared distances
            ens = np.concatenate(members, axis=1) / np.sqrt(len(members))
            add(f"course39 × {len(seeds)} seeds" + (" + flip" if flip else ""), ens.astype(np.float32), labels, fold)
        print(f"fold {i}: test {fold['test']}: " + ", ".join(
            f"{n} {r['test'][-1]['rank1']:.3f}/{r['test'][-1]['eer']:.3f}" for n, r in per.items()), flush=True)
    methods = {}
    for name, rec in per.items():
        correct, total = map(sum, zip(*rec["nway"]))
        methods[name] = {"test": summarize(rec["test"]), "val": summarize(rec["val"]),
                         "nway_rank1": correct / total, "n_people": len(meta["classes"])}
    return {"folds": folds, "methods": methods, "recipe": list(recipe), "seeds": list(seeds), "flip": flip,
            "seconds": {k: round(v, 1) for k, v in timing.items()}}


def _ms(s: dict[str, float]) -> str:
    return f"{s['mean']:.3f} ± {s['std']:.3f}"


def format_table(result: dict[str, Any]) -> str:
    """The fold table (markdown)."""
    lines = ["| method | rank-1 (4-way) | EER | TAR @ FAR 1 % | 20-way rank-1 | val rank-1 | val EER |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, m in result["methods"].items():
        t, v = m["test"], m["val"]
        lines.append(f"| {name} | {_ms(t['rank1'])} | {_ms(t['eer'])} | {_ms(t['tar_at_far_1pct'])} | "
                     f"{m['nway_rank1']:.3f} | {_ms(v['rank1'])} | {_ms(v['eer'])} |")
    return "\n".join(lines)


def format_section(result: dict[str, Any], load: tuple[float, float] | None, wall: float | None) -> str:
    k = len(result["folds"])
    test_people = "; ".join(", ".join(f["test"]) for f in result["folds"])
    fisher = result["methods"].get("Fisherfaces", {}).get("test")
    scratch = next((n for n in result["methods"] if n.startswith("course39")), None)
    verdict = ""
    if fisher and scratch:
        s = result["methods"][scratch]["test"]
        beats = s["rank1"]["mean"] > fisher["rank1"]["mean"] and s["eer"]["mean"] < fisher["eer"]["mean"]
        verdict = (f" From scratch ({scratch}) against Fisherfaces, fold means: rank-1 {s['rank1']['mean']:.3f} vs "
                   f"{fisher['rank1']['mean']:.3f}, EER {s['eer']['mean']:.3f} vs {fisher['eer']['mean']:.3f}: "
                   + ("**beats it on both**." if beats else "**does not beat it on both**."))
    recipe = " ".join(result["recipe"]) or "as configured (conf/encoder/course39.yaml, conf/face/default.yaml)"
    return "\n".join([
        "## Faces on identity folds: every embedded person a test person once (issue 20)", "",
        f"{k} folds over the 20 embedded ORL people (test people per fold: {test_people}); each fold validates on "
        "the next fold's 4 people and trains on the other 12. Per fold: baselines fitted on the training people, "
        "hyper-parameters chosen on the validation people; course39 trained from scratch on the training people, "
        "checkpoint chosen on the validation people "
        f"(recipe: {recipe}; seeds {result['seeds']}{'; flip test-time augmentation' if result['flip'] else ''}); "
        "dlib's network as is. Mean ± standard deviation over folds; rank-1 is one-shot, exact average over "
        "every choice of enrolled image, among the fold's 4 test people; EER and TAR over all their pairs. "
        "20-way rank-1: each fold's test probes against one enrolled image of every one of the 20 people, embedded "
        "by that fold's model (50 random enrolments per fold, pooled; the 16 other people are ones that model was "
        "trained or validated on). `val` columns: the same on the validation people, which is what recipes may be "
        "chosen by." + verdict, "",
        format_table(result), "",
        f"Wall-clock seconds of the parts: {', '.join(f'{k} {v:.0f} s' for k, v in result['seconds'].items())}"
        + (f"; whole command {wall / 60:.1f} min. Load average (1 min) at the start / end: {load[0]:.1f} / "
           f"{load[1]:.1f} on 2 cores" if load and wall else
           " (rendered with --from-json from that run's results, which do not record its load)")
        + ": other helpers' jobs shared the machine, so the times are upper bounds; the accuracies do not "
        "depend on it.",
    ])


def write_comparison_section(result: dict[str, Any], path: Path) -> None:
    """The fold table between markers in ``reports/faces/comparison.md`` (replaced on a rerun)."""
    from cnnlab.io import atomic_path

    block = (f"{MARK_BEGIN}\n## Identity folds (python -m cnnlab.bench.face_folds)\n\n"
             f"{len(result['folds'])} folds over the 20 embedded people, mean ± std over folds; see "
             f"docs/BENCHMARKS.md (face_folds).\n\n{format_table(result)}\n{MARK_END}\n")
    text = path.read_text() if path.is_file() else "# Faces: every method on the same held-out people\n"
    pattern = re.compile(rf"{re.escape(MARK_BEGIN)}.*?{re.escape(MARK_END)}\n", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def main(argv: list[str] | None = None) -> int:
    from cnnlab.face.models.embedder import pretrained_dlib_checkpoint
    from cnnlab.io import write_json

    parser = argparse.ArgumentParser(prog="python -m cnnlab.bench.face_folds", description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5, help="identity folds (5: 4 test people each)")
    parser.add_argument("--recipe", nargs="*", default=[], metavar="OVERRIDE",
                        help="Hydra overrides of the from-scratch recipe (default: as configured)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="course39 seeds (several: an ensemble row)")
    parser.add_argument("--flip", action="store_true", help="flip test-time augmentation for course39 (its row without it stays)")
    parser.add_argument("--no-dlib", action="store_true", help="leave out dlib's network")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--output", type=Path, default=DEFAULT_PATH, help="benchmarks markdown file")
    parser.add_argument("--section", default="face_folds", help="section key in the benchmarks file")
    parser.add_argument("--json", type=Path, default=Path("reports/faces/folds.json"))
    parser.add_argument("--from-json", type=Path, metavar="JSON",
                        help="render the section from a run's saved results (its --json) instead of measuring")
    args = parser.parse_args(argv)
    command = bench_command("cnnlab.bench.face_folds", argv)
    if args.from_json:
        result = json.loads(args.from_json.read_text())
        section = format_section(result, result.get("load"), result.get("wall_s"))
        write_section(args.section, section, command=command, path=args.output)
        write_comparison_section(result, Path(compose().face.paths.comparison) / "comparison.md")
        print(section)
        return 0
    torch.set_num_threads(args.threads)
    start, load0 = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="face_folds_") as tmp:
        work = Path(tmp)
        aligned = aligned_people(work)
        dlib = None if args.no_dlib else pretrained_dlib_checkpoint(work / "dlib.ckpt")
        result = run_folds(aligned, work, args.folds, args.recipe, args.seeds, args.flip, dlib)
    result |= {"load": [load0, os.getloadavg()[0]], "wall_s": time.perf_counter() - start}
    section = format_section(result, result["load"], result["wall_s"])
    print(section)
    write_json(args.json, result)
    write_comparison_section(result, Path(compose().face.paths.comparison) / "comparison.md")
    write_section(args.section, section, command=command, path=args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
