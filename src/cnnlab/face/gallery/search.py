"""Nearest-neighbour search over embeddings: faiss (exact or approximate) or a numpy fallback.

Both backends share one API (``add``, ``search``, ``ntotal``, ``backend``, ``kind``).
``metric="l2"`` returns squared Euclidean distances, ascending; ``metric="ip"`` returns inner
products, descending (for L2-normalised vectors the two orders agree: ‖a − b‖² = 2 − 2 a·b).
Missing neighbours (k larger than the index) come back as index −1, as in faiss.

Index kinds: ``exact`` (faiss ``IndexFlatL2``/``IndexFlatIP``), ``hnsw`` (``IndexHNSWFlat``),
``ivf`` (``IndexIVFFlat``), ``ivfpq`` (IVF with 4-bit fast-scan product quantisation, the
candidates re-ranked by exact distances: ``IVF<n>,PQ<d/2>x4fs,RFlat``) and ``ivfsq`` (IVF with
8-bit scalar quantisation: ``IVF<n>,SQ8``); the IVF kinds are trained on a sample of the first
vectors added. The numpy backend answers every kind exactly: approximate indexes only buy speed,
and exact answers are what they approximate.
"""

from __future__ import annotations

import logging
import math

import numpy as np

log = logging.getLogger(__name__)

KINDS = ("exact", "hnsw", "ivf", "ivfpq", "ivfsq")
IVF_KINDS = ("ivf", "ivfpq", "ivfsq")
METRICS = ("l2", "ip")


def faiss_available() -> bool:
    """Whether faiss can be imported."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _check(kind: str, metric: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"index kind must be one of {KINDS}, got {kind!r}")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def _f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.atleast_2d(x), dtype=np.float32)


class NumpyIndex:
    """Exhaustive search in numpy (float32 like faiss; queries in chunks to bound memory).

    Args:
        dim: vector size.
        kind: accepted for API parity; every kind is answered exactly.
        metric: ``"l2"`` or ``"ip"``.
    """

    backend = "numpy"

    def __init__(self, dim: int, kind: str = "exact", metric: str = "l2", chunk: int = 1024):
        _check(kind, metric)
        self.dim, self.kind, self.metric, self.chunk = dim, kind, metric, chunk
        self._data = np.zeros((0, dim), np.float32)
        self._sq = np.zeros(0, np.float32)             # squared norms, computed once per vector

    @property
    def ntotal(self) -> int:
        return len(self._data)

    def add(self, x: np.ndarray) -> None:
        x = _f32(x)
        self._data = np.concatenate([self._data, x])
        self._sq = np.concatenate([self._sq, (x * x).sum(1)])

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores [nq, k] float32, indices [nq, k] int64)``, best first."""
        data, sq, q = self._data, self._sq, _f32(q)
        kk = min(k, len(data))
        scores = np.full((len(q), k), np.inf if self.metric == "l2" else -np.inf, np.float32)
        ids = np.full((len(q), k), -1, np.int64)
        if kk == 0:
            return scores, ids
        for s in range(0, len(q), self.chunk):
            part = q[s:s + self.chunk]
            ip = part @ data.T
            # Sort by a cost that is lower for better matches, whatever the metric.
            if self.metric == "l2":
                cost = np.maximum((part * part).sum(1)[:, None] + sq[None, :] - 2.0 * ip, 0.0)
            else:
                cost = -ip
            top = np.argpartition(cost, kk - 1, axis=1)[:, :kk]
            top = np.take_along_axis(top, np.take_along_axis(cost, top, 1).argsort(1, kind="stable"), 1)
            best = np.take_along_axis(cost, top, 1)
            scores[s:s + len(part), :kk] = best if self.metric == "l2" else -best
            ids[s:s + len(part), :kk] = top
        return scores, ids


class FaissIndex:
    """A faiss index behind the common API.

    Args:
        dim: vector size.
        kind: ``"exact"``, ``"hnsw"`` or ``"ivf"``.
        metric: ``"l2"`` or ``"ip"``.
        hnsw_m: HNSW graph degree M.
        ef_search: HNSW candidate-list size at query time (recall against speed).
        ef_construction: HNSW candidate-list size while building.
        nlist: IVF cells (default ``nlist_factor``·√n, at most n/39 so each cell gets enough
            training points).
        nlist_factor: see ``nlist``.
        nprobe: IVF cells visited per query (default nlist/8, at least 1).
        k_factor: ``ivfpq``: candidates re-ranked by exact distance, per neighbour asked for.
    """

    backend = "faiss"

    def __init__(self, dim: int, kind: str = "exact", metric: str = "l2", hnsw_m: int = 32, ef_search: int = 128,
                 ef_construction: int = 80, nlist: int | None = None, nprobe: int | None = None,
                 nlist_factor: float = 4.0, k_factor: int = 8):
        import faiss

        _check(kind, metric)
        self.dim, self.kind, self.metric = dim, kind, metric
        self._faiss_metric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
        self.nlist, self.nprobe, self.nlist_factor, self.k_factor = nlist, nprobe, nlist_factor, k_factor
        self.index = None
        if kind == "exact":
            self.index = faiss.IndexFlatL2(dim) if metric == "l2" else faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            self.index = faiss.IndexHNSWFlat(dim, hnsw_m, self._faiss_metric)
            self.index.hnsw.efConstruction = ef_construction
            self.index.hnsw.efSearch = ef_search

    @property
    def ntotal(self) -> int:
        return 0 if self.index is None else int(self.index.ntotal)

    def _train_ivf(self, x: np.ndarray) -> None:
        import faiss

        nlist = self.nlist or max(1, min(int(self.nlist_factor * math.sqrt(len(x))), len(x) // 39))
        if self.kind == "ivf":
            quantizer = faiss.IndexFlatL2(self.dim) if self.metric == "l2" else faiss.IndexFlatIP(self.dim)
            self.index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, self._faiss_metric)
            self._quantizer = quantizer                 # the IVF index does not own it: keep it alive
        else:
            if self.kind == "ivfpq" and self.dim % 2:
                raise ValueError(f"ivfpq needs an even dimension (PQ of d/2 sub-vectors), got {self.dim}")
            codes = f"PQ{self.dim // 2}x4fs,RFlat" if self.kind == "ivfpq" else "SQ8"
            self.index = faiss.index_factory(self.dim, f"IVF{nlist},{codes}", self._faiss_metric)
        # k-means on a seeded sample of 64 points per cell: the centroids barely move with more,
        # and training on all of 10⁶ vectors would take longer than adding them.
        if len(x) > 64 * nlist:
            x = x[np.sort(np.random.default_rng(0).choice(len(x), 64 * nlist, replace=False))]
        self.index.train(x)
        self._set_nprobe(self.nprobe or max(1, nlist // 8))
        if self.kind == "ivfpq":
            self.index.k_factor = self.k_factor

    def _set_nprobe(self, nprobe: int) -> None:
        import faiss

        faiss.extract_index_ivf(self.index).nprobe = nprobe

    def add(self, x: np.ndarray) -> None:
        x = _f32(x)
        if self.index is None:
            self._train_ivf(x)
        self.index.add(x)

    def tune(self, ef_search: int | None = None, nprobe: int | None = None, k_factor: int | None = None) -> None:
        """Change the query-time knobs (HNSW ``efSearch``, IVF ``nprobe``, IVF-PQ's re-ranking
        ``k_factor``) without rebuilding."""
        if ef_search is not None and self.kind == "hnsw":
            self.index.hnsw.efSearch = ef_search
        if nprobe is not None and self.kind in IVF_KINDS:
            self.nprobe = nprobe
            if self.index is not None:
                self._set_nprobe(nprobe)
        if k_factor is not None and self.kind == "ivfpq":
            self.k_factor = k_factor
            if self.index is not None:
                self.index.k_factor = k_factor

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores [nq, k] float32, indices [nq, k] int64)``, best first."""
        q = _f32(q)
        if self.index is None:
            fill = np.inf if self.metric == "l2" else -np.inf
            return np.full((len(q), k), fill, np.float32), np.full((len(q), k), -1, np.int64)
        scores, ids = self.index.search(q, k)
        return scores, ids.astype(np.int64, copy=False)


def make_index(dim: int, kind: str = "exact", metric: str = "l2", backend: str = "auto", **params):
    """An empty index: faiss when ``backend`` is ``"faiss"`` or (``"auto"`` and faiss imports), else numpy.

    Args:
        params: faiss tuning knobs (see :class:`FaissIndex`); the numpy backend ignores them.

    Raises:
        ImportError: ``backend="faiss"`` but faiss is not installed.
    """
    if backend not in ("auto", "faiss", "numpy"):
        raise ValueError(f"backend must be 'auto', 'faiss' or 'numpy', got {backend!r}")
    if backend == "faiss" or (backend == "auto" and faiss_available()):
        return FaissIndex(dim, kind, metric, **params)
    if kind != "exact":
        log.info("faiss is not available: the %r index is answered by exact numpy search", kind)
    return NumpyIndex(dim, kind, metric)


def build_index(vectors: np.ndarray, kind: str = "exact", metric: str = "l2", backend: str = "auto", **params):
    """:func:`make_index` with ``vectors`` already added."""
    vectors = np.atleast_2d(vectors)
    index = make_index(vectors.shape[1], kind, metric, backend, **params)
    index.add(vectors)
    return index
