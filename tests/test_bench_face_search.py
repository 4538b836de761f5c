"""The face search benchmark: a small run writes its section; the 10⁶ goal is judged per index."""

from __future__ import annotations

import argparse

import numpy as np

import pytest

pytest.importorskip("faiss")

from cnnlab.bench.face_search import Row, format_table, main  # noqa: E402


def test_small_run_writes_every_index_and_the_load(tmp_path):
    out = tmp_path / "B.md"
    assert main(["--sizes", "2000", "--probes", "20", "--numpy-probes", "5", "--build-threads", "1",
                 "--data", "random", "--nlist-factor", "2", "--no-encoding", "--output", str(out)]) == 0
    text = out.read_text()
    assert "<!-- bench:face_search -->" in text and "Load average (1 min) at the start / end:" in text
    for index in ("exact", "hnsw", "ivf", "ivfpq", "ivfsq", "numpy"):
        assert f"| random | 2,000 | {index} |" in text
    assert "| 1.0000 | 1.0000 | – | – |" in text  # exact search agrees with itself
    assert "10⁶ not measured here" in text


def test_max_n_leaves_an_index_out_of_larger_galleries_and_says_so(tmp_path):
    out = tmp_path / "B.md"
    assert main(["--sizes", "1000", "2000", "--probes", "10", "--numpy-probes", "2", "--build-threads", "1",
                 "--data", "random", "--indexes", "hnsw", "--max-n", "hnsw=1000", "--no-encoding",
                 "--output", str(out)]) == 0
    text = out.read_text()
    assert "| random | 1,000 | hnsw |" in text and "| random | 2,000 | hnsw |" not in text
    assert "| random | 2,000 | exact |" in text and "| random | 2,000 | numpy |" in text
    assert "(`--max-n`)" in text and "hnsw only up to 1,000 vectors (its build at 1,000: " in text
    with pytest.raises(SystemExit):
        main(["--max-n", "hnsw:1000", "--no-encoding", "--output", str(out)])


def test_gmm_vectors_keep_the_structure_of_real_encodings():
    """Centres fall where the fitted encodings lie (a low-dimensional region, unlike random unit
    vectors), and images of a person scatter with the measured within-person spread."""
    from cnnlab.bench.face_search import gmm_face_like, gmm_model, synthetic

    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(32, 4)))[0]              # "real" encodings: a 4-d subspace of 32-d
    people = rng.normal(size=(20, 4))
    emb = np.repeat(people, 10, 0) @ basis.T + 0.05 * rng.normal(size=(200, 32))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    labels = np.repeat(np.arange(20), 10).astype(str)
    model = gmm_model(emb, labels, components=4)
    x, ids, probes = gmm_face_like(3000, 5, 50, model, seed=1)
    assert x.shape == (3000, 32) and probes.shape == (50, 32) and ids.max() == 599
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)

    def off_subspace(v):                                             # energy outside the 4-d subspace
        return float(np.mean(np.sum((v - v @ basis @ basis.T) ** 2, 1)))

    rand = synthetic(3000, 32, 5, 0.6, 50)[0]
    assert off_subspace(x) < 0.2 < off_subspace(rand)
    within = np.mean([np.linalg.norm(x[ids == i] - x[ids == i].mean(0), axis=1).mean() for i in range(20)])
    real = np.mean([np.linalg.norm(emb[labels == p] - emb[labels == p].mean(0), axis=1).mean() for p in "0123"])
    assert 0.5 * real < within < 2.0 * real


def test_goal_is_judged_at_one_million_only():
    args = argparse.Namespace(dim=128, threads=1, build_threads=2, per_person=5, spread=0.6, probes=200,
                              numpy_probes=50, hnsw_m=32, ef_construction=40, target=0.99, nlist_factor=16,
                              k_factor=8)
    rows = [Row(10_000, "exact", 0.0, 0.2, 1.0), Row(1_000_000, "hnsw", 60.0, 0.4, 0.995, "ef_search=64", 0.999),
            Row(1_000_000, "numpy", 1.0, 80.0, 1.0), Row(1_000_000, "ivf", 9.0, 1.0, 0.97, "nprobe=128")]
    lines = format_table(rows, args, (1.0, 2.0)).splitlines()
    assert lines[-1] == ("At 1,000,000 vectors the goal is met by: hnsw.")
    lines = lines[:-2]
    assert lines[-4].endswith("| – | – |")
    assert lines[-3].endswith("| 0.9950 | 0.9990 | ef_search=64 | yes |")
    assert lines[-2].endswith("| – | no |") and lines[-1].endswith("| nprobe=128 | no |")


def test_tune_says_when_the_target_is_out_of_reach():
    from cnnlab.bench.face_search import synthetic, tune
    from cnnlab.face.gallery.encodings import Encodings
    from cnnlab.face.gallery.verify import Gallery

    x, ids, probes = synthetic(1000, 16, 5, 0.6, 20)
    gallery = Gallery(tau=4.0, index_kind="ivf", backend="faiss")
    gallery.enroll(Encodings([str(i) for i in range(1000)], ids.astype(str).tolist(), x, "s", "s"))
    exact = np.argmin(((probes[:, None] - x[None]) ** 2).sum(-1), 1)
    assert tune(gallery, "ivf", probes, exact, 0.5).startswith("nprobe=")
    assert tune(gallery, "ivf", probes, (exact + 1) % 1000, 0.99) == "nprobe=512 (largest; target not reached)"


def test_verdict_names_the_nearest_misses():
    from cnnlab.bench.face_search import verdict

    rows = [Row(1_000_000, "hnsw", 1.0, 6.8, 0.92), Row(1_000_000, "ivf", 1.0, 7.7, 0.995),
            Row(1_000_000, "exact", 1.0, 42.5, 1.0)]
    assert verdict(rows) == ("At 1,000,000 vectors no index meets the goal. The fastest with recall@1 ≥ 0.99: "
                             "ivf at 7.70 ms.")
    rows.append(Row(1_000_000, "x", 1.0, 3.0, 0.9))
    assert verdict(rows).endswith("The most accurate within 5 ms: x at recall@1 0.9000.")
    assert verdict(rows[:0]).startswith("Goal not measured")
