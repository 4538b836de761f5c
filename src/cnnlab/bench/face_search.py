"""Face search at scale: ``Gallery.identify`` latency (p50) and recall@1 against exact search.

For each gallery size N, a synthetic gallery of N unit vectors (128-d, like the encoder's) is
enrolled in a :class:`~cnnlab.face.gallery.verify.Gallery` with each index: exact faiss
(``IndexFlatL2``), HNSW, IVF-Flat, IVF-PQ fast-scan with exact re-ranking, IVF with 8-bit scalar
quantisation and the numpy fallback. Two data sets (``--data``), each with ``--per-person``
images per person and probes that are new images of enrolled people:

- ``random``: people are random unit centres, images scattered isotropically around them: the
  worst case for an approximate index (no low-dimensional structure to exploit);
- ``gmm``: realistic vectors: a Gaussian mixture (8 components, one shared full covariance)
  fitted to dlib's encodings of the 200 embedded faces gives each new person's centre, and the
  images scatter around it with the within-person covariance measured on those faces
  (:func:`gmm_face_like`). HNSW's ``efSearch`` and IVF's ``nprobe`` are tuned on separate probes
(the smallest value reaching ``--target`` recall@1), then the latency of one ``identify`` call
(one probe, top-1 person) is timed probe by probe and recall@1 (the same nearest vector as exact
search) is measured on the timed probes. Queries run on ``--threads`` threads, faiss's OpenMP and
numpy's BLAS alike, so the numpy fallback is timed on the same footing as faiss.

Encoding throughput (issue 6: "report it") comes beside: faces/s of the trained encoder
(``--encoder``, default the configured one) from image files and for the forward pass alone, as
:func:`cnnlab.bench.face_accuracy.throughput` measures it.

    python -m cnnlab.bench.face_search --sizes 10000 100000 1000000

Writes the ``face_search`` section of docs/BENCHMARKS.md (``--output`` to write elsewhere).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from cnnlab.bench.report import DEFAULT_PATH, bench_command, write_section
from cnnlab.face.gallery.encodings import Encodings
from cnnlab.face.gallery.verify import Gallery

GOAL_N, GOAL_MS, GOAL_RECALL = 1_000_000, 5.0, 0.99
_NPROBE = ("nprobe", (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512))
KNOBS = {"hnsw": ("ef_search", (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)),
         "ivf": _NPROBE, "ivfpq": _NPROBE, "ivfsq": _NPROBE}
INDEXES = ("exact", "hnsw", "ivf", "ivfpq", "ivfsq")


@dataclass
class Row:
    """One (gallery size, index) measurement."""

    n: int
    index: str
    build_s: float
    p50_ms: float
    recall: float
    knob: str = ""
    person: float = 1.0
    data: str = "random"


def person_agreement(gallery: Gallery, probes: np.ndarray, exact_person: np.ndarray) -> float:
    """Fraction of probes whose ``identify`` top-1 person is the person of the exact nearest vector.

    Looser than recall@1 (another image of the right person counts): what a user of ``identify``
    sees of the approximation.
    """
    names = [r.matches[0][0] for r in gallery.identify_many(probes, k=1)]
    return float(np.mean(np.asarray(names) == exact_person.astype(str)))


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def synthetic(n: int, dim: int, per_person: int, spread: float, n_probes: int, seed: int = 0):
    """``(gallery vectors [n, dim], person ids [n], probes [n_probes, dim])``.

    A person is a random unit centre; an image is the centre plus Gaussian noise of total norm
    about ``spread``, re-normalised. Probes are new images of random enrolled people.
    """
    rng = np.random.default_rng(seed)
    people = -(-n // per_person)
    centres = _unit(rng.normal(size=(people, dim)))
    ids = np.repeat(np.arange(people), per_person)[:n]
    chunks = []
    for s in range(0, n, 100_000):                      # in chunks: float64 noise for 10⁶ would be 1 GB
        part = ids[s:s + 100_000]
        chunks.append(_unit(centres[part] + spread / np.sqrt(dim) * rng.normal(size=(len(part), dim))))
    who = rng.integers(0, people, n_probes)
    probes = _unit(centres[who] + spread / np.sqrt(dim) * rng.normal(size=(n_probes, dim)))
    return np.concatenate(chunks), ids, probes


def gmm_model(embeddings: np.ndarray, labels: np.ndarray, components: int = 8, seed: int = 0):
    """``(mixture of person centres, within-person residuals [N, dim])`` of real encodings.

    The mixture (one full covariance shared by the components, so that the correlations between
    dimensions survive: real encodings fill a low-dimensional part of the sphere) is fitted to every
    encoding, so its samples fall where real faces fall. The residuals (each encoding minus its
    person's mean) carry the within-person covariance.
    """
    from sklearn.mixture import GaussianMixture

    labels = np.asarray(labels)
    means = {p: embeddings[labels == p].mean(0) for p in np.unique(labels)}
    resid = embeddings - np.stack([means[p] for p in labels])
    gmm = GaussianMixture(components, covariance_type="tied", reg_covar=1e-5, random_state=seed).fit(embeddings)
    return gmm, resid.astype(np.float64)


def _within(resid: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """``m`` draws of N(0, Σ) with Σ the covariance of ``resid``'s rows (mixing them with Gaussian weights)."""
    return rng.normal(size=(m, len(resid))) @ resid / np.sqrt(len(resid))


def gmm_face_like(n: int, per_person: int, n_probes: int, model, seed: int = 0):
    """``(gallery vectors [n, dim], person ids [n], probes [n_probes, dim])`` from :func:`gmm_model`."""
    gmm, resid = model
    rng = np.random.default_rng(seed)
    people = -(-n // per_person)
    gmm.random_state = seed
    centres = gmm.sample(people)[0]
    centres = centres[rng.permutation(people)]          # sample() groups by component
    ids = np.repeat(np.arange(people), per_person)[:n]
    chunks = [_unit(centres[ids[s:s + 50_000]] + _within(resid, len(ids[s:s + 50_000]), rng))
              for s in range(0, n, 50_000)]
    who = rng.integers(0, people, n_probes)
    probes = _unit(centres[who] + _within(resid, n_probes, rng))
    return np.concatenate(chunks), ids, probes


def dlib_encodings() -> tuple[np.ndarray, np.ndarray]:
    """dlib's encodings of the 200 embedded faces (aligned as the pipeline aligns them) and their people."""
    import tempfile

    from cnnlab.bench.face_folds import aligned_people, embed_paths
    from cnnlab.data.prepared_split import read_prepared
    from cnnlab.face.models.embedder import pretrained_dlib_checkpoint

    with tempfile.TemporaryDirectory(prefix="face_search_") as tmp:
        aligned = aligned_people(Path(tmp))
        _, rows = read_prepared(aligned)
        ckpt = pretrained_dlib_checkpoint(Path(tmp) / "dlib.ckpt")
        return embed_paths(ckpt, [aligned / r["path"] for r in rows]), np.array([r["label"] for r in rows])


def _recall(gallery: Gallery, probes: np.ndarray, exact: np.ndarray) -> float:
    _, ids = gallery.index.search(probes, 1)
    return float(np.mean(ids[:, 0] == exact))


def tune(gallery: Gallery, kind: str, probes: np.ndarray, exact: np.ndarray, target: float) -> str:
    """Set the smallest query knob that reaches ``target`` recall@1 on ``probes``.

    Returns:
        ``"<knob>=<value>"``; when no value reaches the target the largest is kept and the text
        says so.
    """
    name, values = KNOBS[kind]
    for v in values:
        gallery.index.tune(**{name: v})
        if _recall(gallery, probes, exact) >= target:
            return f"{name}={v}"
    return f"{name}={v} (largest; target not reached)"


def p50_identify_ms(gallery: Gallery, probes: np.ndarray) -> float:
    """Median wall time of one ``identify`` call (one probe, top-1 person), after two warm-up calls."""
    for q in probes[:2]:
        gallery.identify(q, k=1)
    times = []
    for q in probes:
        start = time.perf_counter()
        gallery.identify(q, k=1)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def measure_size(n: int, args: argparse.Namespace, data: str = "random", model=None) -> list[Row]:
    """Every index on one synthetic gallery of ``n`` vectors (``data``: ``random`` or ``gmm``)."""
    import faiss

    if data == "gmm":
        x, ids, probes = gmm_face_like(n, args.per_person, 2 * args.probes, model, seed=n)
    else:
        x, ids, probes = synthetic(n, args.dim, args.per_person, args.spread, 2 * args.probes, seed=n)
    enc = Encodings([str(i) for i in range(n)], ids.astype(str).tolist(), x, "synthetic", "synthetic")
    rows, exact = [], None
    kinds = ["exact", *(k for k in args.indexes if k != "exact" and n <= args.max_n.get(k, n))]  # exact first
    for kind, backend in [(k, "faiss") for k in kinds] + [("exact", "numpy")]:
        params = {"hnsw_m": args.hnsw_m, "ef_construction": args.ef_construction} if kind == "hnsw" else {}
        if kind in ("ivf", "ivfpq", "ivfsq"):
            params = {"nlist_factor": args.nlist_factor} | ({"k_factor": args.k_factor} if kind == "ivfpq" else {})
        gallery = Gallery(tau=4.0, index_kind=kind, backend=backend, **params)
        faiss.omp_set_num_threads(args.build_threads)   # building may use every core ...
        start = time.perf_counter()
        gallery.enroll(enc)
        build = time.perf_counter() - start
        faiss.omp_set_num_threads(args.threads)         # ... queries are timed on --threads
        with threadpool_limits(args.threads):           # numpy's BLAS too
            if exact is None:                            # faiss flat: the reference answers
                exact = gallery.index.search(probes, 1)[1][:, 0]
            tune_p, eval_p = probes[: args.probes], probes[args.probes:]
            knob = tune(gallery, kind, tune_p, exact[: args.probes], args.target) if kind in KNOBS else ""
            timed = eval_p[: args.numpy_probes] if backend == "numpy" else eval_p
            rows.append(Row(n, "numpy" if backend == "numpy" else kind, build, p50_identify_ms(gallery, timed),
                            _recall(gallery, eval_p, exact[args.probes:]), knob,
                            person_agreement(gallery, eval_p, ids[exact[args.probes:]]), data))
        print(f"{data} N={n:,} {rows[-1].index}: build {build:.1f} s, p50 {rows[-1].p50_ms:.3f} ms, "
              f"recall@1 {rows[-1].recall:.4f}, person {rows[-1].person:.4f} {knob}", flush=True)
        del gallery
    return rows


def encoding_rates(ckpt: Path, image_dir: Path) -> list[tuple[int, float, float]]:
    """``(threads, faces/s from files, faces/s forward only)`` of a face encoder on a folder of faces."""
    from cnnlab.bench.face_accuracy import throughput

    import torch

    threads = torch.get_num_threads()
    try:
        return throughput(ckpt, image_dir)
    finally:
        torch.set_num_threads(threads)


def verdict(rows: list[Row]) -> str:
    """One sentence on the goal at 10⁶ per data set: which indexes meet it, else the nearest misses."""
    sets = sorted({r.data for r in rows})
    if len(sets) > 1:
        return " ".join(f"{d}: {verdict([r for r in rows if r.data == d])}" for d in sets)
    big = [r for r in rows if r.n == GOAL_N]
    if not big:
        return f"Goal not measured: no gallery of {GOAL_N:,} vectors in this run."
    met = [r.index for r in big if _goal(r) == "yes"]
    if met:
        return f"At {GOAL_N:,} vectors the goal is met by: {', '.join(met)}."
    accurate = [r for r in big if r.recall >= GOAL_RECALL]
    fast = [r for r in big if r.p50_ms <= GOAL_MS]
    parts = [f"At {GOAL_N:,} vectors no index meets the goal."]
    if accurate:
        r = min(accurate, key=lambda r: r.p50_ms)
        parts.append(f"The fastest with recall@1 ≥ {GOAL_RECALL}: {r.index} at {r.p50_ms:.2f} ms.")
    if fast:
        r = max(fast, key=lambda r: r.recall)
        parts.append(f"The most accurate within {GOAL_MS:g} ms: {r.index} at recall@1 {r.recall:.4f}.")
    return " ".join(parts)


def _goal(r: Row) -> str:
    if r.n != GOAL_N:
        return ""
    return "yes" if r.p50_ms <= GOAL_MS and r.recall >= GOAL_RECALL else "no"


def _limits(rows: list[Row], args: argparse.Namespace) -> str:
    """The sentence on indexes left out of the larger galleries (``--max-n``), with their largest build."""
    parts = []
    for kind, limit in sorted(getattr(args, "max_n", {}).items()):
        if kind not in getattr(args, "indexes", INDEXES) or not any(r.n > limit for r in rows):
            continue
        built = [r for r in rows if r.index == kind]
        largest = max((r.n for r in built), default=0)
        builds = ", ".join(f"{r.build_s:.0f} s ({r.data})" for r in built if r.n == largest)
        parts.append(f"{kind} only up to {limit:,} vectors" + (f" (its build at {largest:,}: {builds})" if builds else ""))
    if not parts:
        return ""
    return (" Left out of the larger galleries (`--max-n`), because building them there would not fit the "
            f"run's time on this shared machine: {'; '.join(parts)}.")


def format_table(rows: list[Row], args: argparse.Namespace, load: tuple[float, float],
                 rates: list[tuple[int, float, float]] | None = None) -> str:
    """The markdown section: the search table, then encoding throughput when measured."""
    sizes = sorted({r.n for r in rows})
    lines = [
        "## Face search: identify latency and recall@1 (CPU)", "",
        f"`Gallery.identify` (one probe, top-1 person) against N enrolled {args.dim}-d unit vectors, "
        f"{args.threads} thread(s) per query (faiss OpenMP and numpy's BLAS alike); indexes built on "
        f"{args.build_threads} threads. Two synthetic data sets, {args.per_person} images per person, probes are "
        f"new images of enrolled people: `random`: people are random unit centres, images with noise of norm "
        f"{args.spread} around them, re-normalised (the worst case for an approximate index); `gmm`: realistic "
        "vectors, people's centres drawn from a Gaussian mixture (8 components, one shared full covariance) "
        "fitted to dlib's encodings of the 200 embedded faces, images scattered with the within-person "
        f"covariance measured on those faces. p50 over {args.probes} probes ({args.numpy_probes} for "
        f"numpy); recall@1: the same nearest vector as exact faiss search, on those probes; same person: "
        f"`identify`'s top-1 person is that vector's person (another image of the right person counts). "
        f"HNSW: M={args.hnsw_m}, efConstruction={args.ef_construction}; IVF-Flat, IVF-PQ (4-bit fast-scan PQ of "
        f"{args.dim // 2} sub-vectors, {args.k_factor}× candidates re-ranked exactly) and IVF-SQ8: nlist = "
        f"{args.nlist_factor:g}√N, k-means on 64 vectors per cell. Each uses the smallest efSearch / nprobe reaching "
        f"recall@1 ≥ {args.target} on {args.probes} separate tuning probes. Goal: ≤ {GOAL_MS:g} ms at 10⁶ with "
        f"recall@1 ≥ {GOAL_RECALL}. Sizes in this run: {', '.join(f'{n:,}' for n in sizes)}"
        + ("" if GOAL_N in sizes else f" (10⁶ not measured here: a build of every index at 10⁶ takes longer than "
           f"this shared machine allows; `--sizes 1000000` runs it)") + "." + _limits(rows, args) + " "
        f"The machine was shared with other jobs. Load average (1 min) at the start / end: {load[0]:.1f} / "
        f"{load[1]:.1f} on {os.cpu_count()} cores (this run counts for about 1; more means other processes shared "
        f"the cores, which slows every figure, builds most).", "",
        "| data | N | index | build (s) | identify p50 (ms) | recall@1 | same person | tuned | goal met (10⁶) |",
        "|---|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r.data} | {r.n:,} | {r.index} | {r.build_s:.1f} | {r.p50_ms:.3f} | {r.recall:.4f} | "
                     f"{r.person:.4f} | {r.knob or '–'} | {_goal(r) or '–'} |")
    lines += ["", verdict(rows)]
    if rates:
        lines += ["", f"Encoding throughput of the face encoder `{args.encoder}` (batch 64, the images of "
                  f"`{args.images}`, median of 3 passes):", "",
                  "| CPU threads | faces/s from files (decode + resize + forward) | faces/s forward only |",
                  "|---:|---:|---:|"]
        lines += [f"| {t} | {files:,.0f} | {fwd:,.0f} |" for t, files, fwd in rates]
    return "\n".join(lines)


def _default_encoder() -> tuple[Path | None, Path | None]:
    """The configured encoder checkpoint and the identity split's raw image folder (None if absent)."""
    from cnnlab.bench.face_accuracy import compose

    cfg = compose()
    ckpt = Path(cfg.face.paths.encoder)
    return (ckpt if ckpt.is_file() else None), Path(compose(f"data={cfg.face.datasets.ids}").data.root)


def _max_n(text: str) -> tuple[str, int]:
    """``"hnsw=100000"`` → ``("hnsw", 100000)`` (argparse type of ``--max-n``)."""
    kind, _, n = text.partition("=")
    if kind not in INDEXES or not n.isdigit():
        raise argparse.ArgumentTypeError(f"--max-n takes INDEX=N with INDEX one of {', '.join(INDEXES)}, got {text!r}")
    return kind, int(n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnlab.bench.face_search", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--per-person", type=int, default=5, help="images per synthetic person")
    parser.add_argument("--spread", type=float, default=0.6, help="norm of an image's offset from its person")
    parser.add_argument("--probes", type=int, default=200, help="timed probes (and as many tuning probes)")
    parser.add_argument("--numpy-probes", type=int, default=50, help="timed probes for the slow numpy search")
    parser.add_argument("--target", type=float, default=0.99, help="recall@1 the ANN knobs are tuned to")
    parser.add_argument("--data", nargs="+", choices=("random", "gmm"), default=["random", "gmm"],
                        help="synthetic data sets (module docstring)")
    parser.add_argument("--indexes", nargs="+", choices=INDEXES, default=list(INDEXES), help="faiss indexes")
    parser.add_argument("--hnsw-m", type=int, default=32, help="HNSW graph degree M")
    parser.add_argument("--ef-construction", type=int, default=200, help="HNSW efConstruction (build effort)")
    parser.add_argument("--nlist-factor", type=float, default=1.0,
                        help="IVF cells: this × √N (k-means on 64 vectors per cell stays affordable at 10⁶)")
    parser.add_argument("--max-n", nargs="+", default=[], metavar="INDEX=N", type=_max_n,
                        help="build INDEX only for galleries of at most N vectors (e.g. hnsw=100000)")
    parser.add_argument("--k-factor", type=int, default=8, help="IVF-PQ: candidates re-ranked per neighbour")
    parser.add_argument("--threads", type=int, default=1, help="threads per query (faiss OpenMP, numpy BLAS)")
    parser.add_argument("--build-threads", type=int, default=os.cpu_count(), help="faiss threads while building")
    parser.add_argument("--encoder", type=Path, help="face-encoder checkpoint for the encoding throughput "
                        "(default: the configured one, face.paths.encoder)")
    parser.add_argument("--images", type=Path, help="folder of faces to encode (default: the raw ORL folder)")
    parser.add_argument("--no-encoding", action="store_true", help="skip the encoding throughput")
    parser.add_argument("--output", type=Path, default=DEFAULT_PATH, help="benchmarks markdown file")
    args = parser.parse_args(argv)
    args.max_n = dict(args.max_n)
    start_load = os.getloadavg()[0]
    model = gmm_model(*dlib_encodings()) if "gmm" in args.data else None
    rows = [row for data in args.data for n in args.sizes for row in measure_size(n, args, data, model)]
    rates = None
    if not args.no_encoding:
        if args.encoder is None or args.images is None:
            ckpt, images = _default_encoder()
            args.encoder, args.images = args.encoder or ckpt, args.images or images
        if args.encoder is None:
            parser.error("no trained face encoder found (face.paths.encoder): pass --encoder or --no-encoding")
        rates = encoding_rates(args.encoder, args.images)
    table = format_table(rows, args, (start_load, os.getloadavg()[0]), rates)
    print(table)
    command = bench_command("cnnlab.bench.face_search", argv)
    write_section("face_search", table, command=command, path=args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
