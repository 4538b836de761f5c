"""PCA colour augmentation (Krizhevsky, Sutskever & Hinton, 2012, "AlexNet", section 4.1).

The training set's RGB pixel values (scaled to [0, 1]) are eigen-decomposed once: covariance
``Σ = Σ_i λ_i p_i p_iᵀ``. Each call then adds ``[p_1 p_2 p_3] · [α_1 λ_1, α_2 λ_2, α_3 λ_3]ᵀ``
with ``α_i ~ N(0, 0.1²)`` drawn once per image to every pixel: colours move along the data's
own principal components, most along the direction in which the training colours vary most.

The shift is in [0, 1] intensity units, as in the paper's formula (λ has units of intensity²,
so the scale matters); a uint8 image is shifted by 255 times as much.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from torchvision.transforms import v2

from ..data.images import DataError, load_image
from ..io import write_json
from .transforms import add_offset, channels_of, is_image

PCA_FILE = "pca_colour.json"


def _pixels(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """A CHW image as an (H·W, C) float64 array in [0, 1] (uint8 is divided by 255)."""
    t = torch.as_tensor(image)
    if t.ndim != 3:
        raise ValueError(f"expected a CHW image, got shape {tuple(t.shape)}")
    x = t.detach().cpu().numpy().astype(np.float64).reshape(t.shape[0], -1).T
    return x / 255.0 if t.dtype == torch.uint8 else x


def prepared_images(root: str | Path, split: str = "train") -> Iterable[torch.Tensor]:
    """The uint8 CHW images of one split of a prepared folder, in manifest order."""
    from ..data.prepared_split import read_prepared

    root = Path(root)
    meta, rows = read_prepared(root)
    mode = "L" if meta["channels"] == 1 else "RGB"
    for row in rows:
        if row["split"] == split:
            yield v2.functional.pil_to_tensor(load_image(root / row["path"], mode))


def fit_pca_colour(source: str | Path | Iterable[torch.Tensor | np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decompose the pixel-colour covariance of a set of images.

    Args:
        source: CHW images (uint8, or float in [0, 1]) with a common channel count, or a prepared
            folder (its train split is used).

    Returns:
        ``(eigvals, eigvecs)``: eigenvalues in descending order (C,), and the unit eigenvectors as
        the columns of a (C, C) array, ``eigvecs[:, i]`` pairing with ``eigvals[i]`` (the
        covariance is the population one, over every pixel of every image).

    Raises:
        DataError: no images, or images with different channel counts.
    """
    images = prepared_images(source) if isinstance(source, (str, Path)) else source
    n, total, outer = 0, None, None
    for image in images:
        x = _pixels(image)
        if total is None:
            total, outer = np.zeros(x.shape[1]), np.zeros((x.shape[1], x.shape[1]))
        elif x.shape[1] != total.shape[0]:
            raise DataError(f"images with {total.shape[0]} and {x.shape[1]} channels in one PCA fit")
        n += x.shape[0]
        total += x.sum(0)
        outer += x.T @ x
    if not n:
        raise DataError(f"no images to fit the PCA colour decomposition on ({source})")
    mean = total / n
    eigvals, eigvecs = np.linalg.eigh(outer / n - np.outer(mean, mean))
    order = np.argsort(eigvals)[::-1]
    return np.clip(eigvals[order], 0.0, None), eigvecs[:, order]


def save_pca_colour(path: str | Path, eigvals: np.ndarray, eigvecs: np.ndarray, **info: Any) -> Path:
    """Write a decomposition as JSON: ``eigvals`` and ``components`` (``components[i]`` = p_i).

    ``info`` (e.g. the source folder) is stored beside them.
    """
    return write_json(path, {**info, "channels": int(len(eigvals)), "scale": "pixel values in [0, 1]",
                             "eigvals": [float(v) for v in eigvals],
                             "components": [[float(v) for v in col] for col in np.asarray(eigvecs).T]})


def load_pca_colour(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a decomposition written by :func:`save_pca_colour` as ``(eigvals, eigvecs)``.

    Raises:
        FileNotFoundError: the file does not exist (the message names it and the stage that writes it).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"PCA colour decomposition {path} not found: run the augment stage "
                                f"(python -m cnnlab.stages.augment) for this data set first")
    data = json.loads(path.read_text())
    return np.asarray(data["eigvals"], dtype=np.float64), np.asarray(data["components"], dtype=np.float64).T


class PCAColour(v2.Transform):
    """AlexNet's PCA colour augmentation as a v2 transform.

    One ``α ~ N(0, alpha_std²)`` vector is drawn per call and the same colour offset is added to
    every pixel of every image in the call. Grey (1-channel) images have no colour to shift and
    pass through unchanged (without reading the decomposition).

    Args:
        path: a decomposition file (:func:`save_pca_colour`), read on first use, so a policy can be
            built before the augment stage has written it.
        alpha_std: standard deviation of the α_i (0.1 in the paper).
        eigvals, eigvecs: a decomposition in memory instead of ``path``.
    """

    _transformed_types = (is_image,)

    def __init__(self, path: str | Path | None = None, alpha_std: float = 0.1,
                 eigvals: np.ndarray | None = None, eigvecs: np.ndarray | None = None):
        super().__init__()
        if (path is None) == (eigvals is None) or (eigvals is None) != (eigvecs is None):
            raise ValueError("PCAColour needs either path or both eigvals and eigvecs")
        self.path = None if path is None else str(path)
        self.alpha_std = float(alpha_std)
        self._eig: tuple[torch.Tensor, torch.Tensor] | None = None
        if eigvals is not None:
            self.set_decomposition(eigvals, eigvecs)

    def set_decomposition(self, eigvals: np.ndarray, eigvecs: np.ndarray) -> None:
        """Use this decomposition (e.g. one just fitted, before its file is published)."""
        vals = torch.as_tensor(np.asarray(eigvals), dtype=torch.float64)
        vecs = torch.as_tensor(np.asarray(eigvecs), dtype=torch.float64)
        if vecs.shape != (len(vals), len(vals)):
            raise ValueError(f"eigvecs must be {len(vals)}×{len(vals)}, got {tuple(vecs.shape)}")
        self._eig = (vals, vecs)

    def decomposition(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(eigvals, eigvecs)`` as float64 tensors, loading ``path`` the first time."""
        if self._eig is None:
            self.set_decomposition(*load_pca_colour(self.path))
        return self._eig

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        c = channels_of(flat_inputs)
        if c == 1:
            return {"offset": None}
        vals, vecs = self.decomposition()
        if len(vals) != c:
            raise ValueError(f"PCA colour decomposition {self.path or '(in memory)'} is for {len(vals)}-channel "
                             f"images, got {c} channels")
        alpha = torch.randn(c, dtype=torch.float64) * self.alpha_std
        return {"offset": vecs @ (alpha * vals), "alpha": alpha}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return inpt if params["offset"] is None else add_offset(inpt, params["offset"])


def iter_transforms(transform: Any) -> Iterable[Any]:
    """``transform`` and every transform nested in it (``Compose``, ``RandomApply``, ``RandomChoice``...)."""
    yield transform
    for child in getattr(transform, "transforms", ()):
        yield from iter_transforms(child)


def bind_pca_colour(policy: Any, eigvals: np.ndarray, eigvecs: np.ndarray) -> int:
    """Give every :class:`PCAColour` inside ``policy`` this decomposition; returns how many there were."""
    found = [t for t in iter_transforms(policy) if isinstance(t, PCAColour)]
    for t in found:
        t.set_decomposition(eigvals, eigvecs)
    return len(found)
