"""Nearest-neighbour search: faiss exact equals numpy, approximate indexes keep recall@1 ≥ 0.99."""

import numpy as np
import pytest

from cnnlab.face.gallery import search
from cnnlab.face.gallery.search import FaissIndex, NumpyIndex, build_index, make_index

faiss = pytest.importorskip("faiss")


@pytest.fixture(autouse=True)
def _one_thread():
    faiss.omp_set_num_threads(1)


def _data(n=2000, nq=300, d=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    q = rng.normal(size=(nq, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), q / np.linalg.norm(q, axis=1, keepdims=True)


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_faiss_exact_and_numpy_give_identical_results(metric):
    x, q = _data()
    fd, fi = build_index(x, "exact", metric, backend="faiss").search(q, 5)
    nd, ni = build_index(x, "exact", metric, backend="numpy").search(q, 5)
    np.testing.assert_array_equal(fi, ni)
    np.testing.assert_allclose(fd, nd, atol=1e-5)
    # And both are the brute-force answer.
    brute = ((q[:, None, :].astype(np.float64) - x[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(ni[:, 0], brute.argmin(1))
    if metric == "l2":
        np.testing.assert_allclose(nd[:, 0], brute.min(1), atol=1e-6)


@pytest.mark.parametrize("kind, params", [("hnsw", {}), ("ivf", {"nprobe": 64})])
def test_approximate_index_recall_at_1(kind, params):
    x, q = _data(n=5000, nq=500, d=16, seed=1)
    _, exact = build_index(x, "exact", backend="numpy").search(q, 1)
    _, approx = build_index(x, kind, backend="faiss", **params).search(q, 1)
    assert np.mean(approx[:, 0] == exact[:, 0]) >= 0.99


def test_more_neighbours_than_vectors_pad_with_minus_one():
    x, q = _data(n=3, nq=2)
    for backend in ("faiss", "numpy"):
        d, i = build_index(x, "exact", backend=backend).search(q, 5)
        assert (i[:, 3:] == -1).all() and (i[:, :3] >= 0).all()
        assert np.all(np.diff(d[:, :3], axis=1) >= 0)
    d, i = make_index(4, "ivf", backend="faiss").search(q[:, :4], 2)   # untrained, empty
    assert (i == -1).all()


def test_numpy_fallback_is_chosen_when_faiss_is_missing(monkeypatch):
    monkeypatch.setattr(search, "faiss_available", lambda: False)
    index = make_index(8, "hnsw")
    assert isinstance(index, NumpyIndex) and index.kind == "hnsw"
    monkeypatch.undo()
    assert isinstance(make_index(8), FaissIndex)
    with pytest.raises(ValueError, match="kind"):
        make_index(8, "lsh")
