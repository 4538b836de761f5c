"""Hand-engineered face representations, scored by the same metrics as the learned encoder.

The seeds' "data vs hand-engineering": each method learns (at most) a projection from the
training people, then embeds the held-out people, exactly like the encoder does.

- Raw pixels: the image itself, compared by nearest neighbour.
- Eigenfaces (Turk & Pentland, 1991): PCA of the training faces.
- Fisherfaces (Belhumeur et al., 1997): PCA to n − c dimensions, then LDA to c − 1.
- LBP histograms (Ahonen et al., 2006): uniform 8-neighbour, radius-1 local binary patterns,
  one histogram per cell of a grid.

All take greyscale images as an array [N, H, W] (any numeric dtype; uint8 is scaled to [0, 1]).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from ...data.images import load_image


def load_gray(paths: Sequence[str | Path], size: tuple[int, int] | None = None) -> np.ndarray:
    """Greyscale images as float32 [N, H, W] in [0, 1], resized to (H, W) when given."""
    out = []
    for p in paths:
        img = load_image(p, "L")
        if size is not None and img.size != (size[1], size[0]):
            img = img.resize((size[1], size[0]))
        out.append(np.asarray(img, np.float32) / 255.0)
    return np.stack(out)


def _as_float(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"baselines take greyscale images [N, H, W], got shape {images.shape}")
    return images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)


class RawPixels:
    """The pixels as the embedding: nothing to learn, so ``fit`` only records the image shape."""

    name = "raw_pixels"

    def fit(self, images: np.ndarray, labels: Sequence) -> "RawPixels":
        self.shape_ = _as_float(images).shape[1:]
        return self

    def embed(self, images: np.ndarray) -> np.ndarray:
        x = _as_float(images)
        if x.shape[1:] != self.shape_:
            raise ValueError(f"raw pixels compare images of one size: fitted on {self.shape_}, got {x.shape[1:]}")
        return x.reshape(len(x), -1)


class Eigenfaces:
    """Projection onto the leading principal components of the training faces.

    Args:
        n_components: components kept (capped at n_train − 1).
    """

    name = "eigenfaces"

    def __init__(self, n_components: int = 50):
        self.n_components = n_components

    def fit(self, images: np.ndarray, labels: Sequence) -> "Eigenfaces":
        x = _as_float(images).reshape(len(images), -1)
        # Exact SVD: with far fewer faces than pixels it is cheap, where the randomised solver
        # sklearn picks by default spends seconds on power iterations over the pixel axis.
        self.pca_ = PCA(min(self.n_components, len(x) - 1), svd_solver="full").fit(x)
        return self

    def embed(self, images: np.ndarray) -> np.ndarray:
        return self.pca_.transform(_as_float(images).reshape(len(images), -1)).astype(np.float32)


class Fisherfaces:
    """PCA (so the within-class scatter is not singular), then LDA to c − 1 dimensions.

    On held-out people the LDA axes are those that best separated the training people. With
    few training people, the paper's n − c PCA dimensions let LDA fit noise that does not carry
    over to new people (on ORL, 12 training people: one-shot rank-1 0.57 at 108 dimensions,
    0.75 at 20-60), so pick ``n_pca`` on validation people.

    Args:
        n_pca: PCA dimensions before LDA; None gives n − c (Belhumeur et al.).
    """

    name = "fisherfaces"

    def __init__(self, n_pca: int | None = None):
        self.n_pca = n_pca

    def fit(self, images: np.ndarray, labels: Sequence) -> "Fisherfaces":
        x = _as_float(images).reshape(len(images), -1)
        n_classes = len(np.unique(np.asarray(labels)))
        self.pca_ = PCA(max(1, min(self.n_pca or len(x), len(x) - n_classes)), svd_solver="full").fit(x)
        self.lda_ = LinearDiscriminantAnalysis(solver="svd").fit(self.pca_.transform(x), np.asarray(labels))
        return self

    def embed(self, images: np.ndarray) -> np.ndarray:
        x = _as_float(images).reshape(len(images), -1)
        return self.lda_.transform(self.pca_.transform(x)).astype(np.float32)


# Neighbours of the 3×3 LBP, clockwise from the top-left: bit b is set when neighbour b ≥ centre.
_OFFSETS = [(-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1)]


def _uniform_table() -> np.ndarray:
    """Map the 256 codes to 59 bins: one per uniform pattern (≤ 2 circular 0/1 transitions), one for the rest."""
    table = np.full(256, 58, dtype=np.int64)
    nxt = 0
    for code in range(256):
        bits = [(code >> b) & 1 for b in range(8)]
        if sum(bits[b] != bits[(b + 1) % 8] for b in range(8)) <= 2:
            table[code], nxt = nxt, nxt + 1
    return table


def lbp_codes(image: np.ndarray) -> np.ndarray:
    """8-neighbour, radius-1 LBP codes (0..255) of the interior pixels of an [H, W] image."""
    c = image[1:-1, 1:-1]
    h, w = c.shape
    codes = np.zeros((h, w), dtype=np.int64)
    for bit, (dy, dx) in enumerate(_OFFSETS):
        codes |= (image[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] >= c).astype(np.int64) << bit
    return codes


class LBPHistograms:
    """Concatenated per-cell LBP histograms; nothing to learn, so ``fit`` only checks the input.

    Each cell's histogram is normalised to sum 1 and square-rooted, so the squared Euclidean
    distance the metrics use is a Hellinger distance between histograms, which ranks like the
    χ² distance LBP face recognition uses.

    Args:
        grid: (rows, cols) of cells.
        uniform: 59 uniform-pattern bins (True) or all 256 codes.
    """

    name = "lbp"

    def __init__(self, grid: tuple[int, int] = (7, 7), uniform: bool = True):
        self.grid, self.uniform = tuple(grid), uniform
        self._table = _uniform_table() if uniform else np.arange(256)
        self._bins = 59 if uniform else 256

    def fit(self, images: np.ndarray, labels: Sequence) -> "LBPHistograms":
        _as_float(images)
        return self

    def _histograms(self, image: np.ndarray) -> np.ndarray:
        codes = self._table[lbp_codes(image)]
        cells = []
        for band in np.array_split(codes, self.grid[0], axis=0):
            for cell in np.array_split(band, self.grid[1], axis=1):
                hist = np.bincount(cell.ravel(), minlength=self._bins).astype(np.float64)
                cells.append(np.sqrt(hist / max(hist.sum(), 1.0)))
        return np.concatenate(cells) / np.sqrt(len(cells))

    def embed(self, images: np.ndarray) -> np.ndarray:
        return np.stack([self._histograms(img) for img in _as_float(images)]).astype(np.float32)


BASELINES = {cls.name: cls for cls in (RawPixels, Eigenfaces, Fisherfaces, LBPHistograms)}
