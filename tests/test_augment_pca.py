"""PCA colour augmentation: the fit is numpy's eigh of the colour covariance, and the shift moves
colours along the data's principal components with magnitudes α_i λ_i, α_i ~ N(0, 0.1²)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from cnnlab.augment import PCAColour, bind_pca_colour, fit_pca_colour, load_pca_colour, save_pca_colour

DIRECTION = np.array([0.6, 0.7, 0.39]) / np.linalg.norm([0.6, 0.7, 0.39])


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _images_along(direction: np.ndarray, n: int = 6, noise: float = 0.002, seed: int = 0) -> list[torch.Tensor]:
    """Float RGB images whose pixel colours are 0.5 + t·direction (+ tiny noise), t ~ U(-0.3, 0.3)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        t = rng.uniform(-0.3, 0.3, size=(1, 12, 10))
        img = 0.5 + direction.reshape(3, 1, 1) * t + rng.normal(0, noise, size=(3, 12, 10))
        out.append(torch.tensor(img.clip(0, 1), dtype=torch.float32))
    return out


def test_fit_is_eigh_of_the_pixel_covariance():
    rng = np.random.default_rng(1)
    images = [torch.tensor(rng.integers(0, 256, size=(3, h, w)), dtype=torch.uint8) for h, w in [(8, 9), (5, 7)]]
    pixels = np.concatenate([im.numpy().reshape(3, -1).T / 255.0 for im in images])
    ref_vals, ref_vecs = np.linalg.eigh(np.cov(pixels.T, bias=True))
    vals, vecs = fit_pca_colour(images)
    np.testing.assert_allclose(vals, ref_vals[::-1], rtol=1e-10)
    np.testing.assert_allclose(np.abs(np.sum(vecs * ref_vecs[:, ::-1], axis=0)), 1.0, rtol=1e-8)  # same up to sign
    np.testing.assert_allclose(vecs.T @ vecs, np.eye(3), atol=1e-12)


def test_top_component_is_the_direction_colours_vary_along():
    vals, vecs = fit_pca_colour(_images_along(DIRECTION))
    assert abs(vecs[:, 0] @ DIRECTION) > 0.9999
    assert vals[1] < 1e-3 * vals[0]


def test_shift_moves_colours_along_the_top_component():
    images = _images_along(DIRECTION)
    vals, vecs = fit_pca_colour(images)
    t = PCAColour(eigvals=vals, eigvecs=vecs)
    x = torch.full((3, 6, 6), 0.5)  # mid-grey float image: no clamping
    for seed in range(5):
        torch.manual_seed(seed)
        params = t.make_params([x])
        change = (t.transform(x, params) - x).double()
        per_pixel = change.flatten(1)
        assert torch.allclose(per_pixel, per_pixel[:, :1].expand_as(per_pixel), atol=1e-6), "same shift everywhere"
        shift = per_pixel[:, 0].numpy()
        # in the eigenbasis the shift is exactly α_i λ_i
        np.testing.assert_allclose(vecs.T @ shift, params["alpha"].numpy() * vals, atol=1e-6)
        assert abs(shift @ DIRECTION) / np.linalg.norm(shift) > 0.99


def test_alpha_has_the_papers_standard_deviation():
    vals, vecs = np.array([0.04, 0.01, 0.002]), np.eye(3)
    t = PCAColour(eigvals=vals, eigvecs=vecs, alpha_std=0.1)
    x = torch.zeros(3, 2, 2)
    torch.manual_seed(0)
    offsets = torch.stack([t.make_params([x])["offset"] for _ in range(4000)]).numpy()
    np.testing.assert_allclose(offsets.std(0), 0.1 * vals, rtol=0.06)
    assert np.all(np.abs(offsets.mean(0)) < 0.01 * vals)  # zero mean (6 standard errors)


def test_uint8_is_shifted_by_255_times_the_float_shift():
    vals, vecs = fit_pca_colour(_images_along(DIRECTION))
    t = PCAColour(eigvals=vals * 20, eigvecs=vecs)  # larger λ: shifts of several grey levels
    x = torch.full((3, 4, 4), 0.5)
    torch.manual_seed(0)
    f = t(x)
    torch.manual_seed(0)
    u = t((x * 255).round().to(torch.uint8))
    assert u.dtype == torch.uint8
    assert (u.float() - 128).abs().max() >= 2
    # uint8 input is 128 where the float one is 127.5 / 255, then rounding: within one grey level
    assert (u.float() - f * 255).abs().max() <= 1.0


def test_grey_images_pass_through_without_reading_the_file(tmp_path):
    t = PCAColour(path=tmp_path / "missing.json")
    x = torch.randint(0, 256, (1, 8, 8), dtype=torch.uint8)
    assert torch.equal(t(x), x)


def test_missing_file_is_named_on_first_rgb_use_not_at_construction(tmp_path):
    t = PCAColour(path=tmp_path / "data" / "pca_colour.json")
    with pytest.raises(FileNotFoundError, match=r"pca_colour\.json.*augment stage"):
        t(torch.zeros(3, 4, 4, dtype=torch.uint8))


def test_channel_mismatch_is_a_clear_error(tmp_path):
    path = save_pca_colour(tmp_path / "p.json", np.array([0.1]), np.eye(1))
    with pytest.raises(ValueError, match="1-channel images, got 3"):
        PCAColour(path=path)(torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match="either path or both"):
        PCAColour()


def test_save_load_roundtrip_is_exact(tmp_path):
    vals, vecs = fit_pca_colour(_images_along(DIRECTION, n=2))
    path = save_pca_colour(tmp_path / "sub" / "pca_colour.json", vals, vecs, source="x")
    loaded_vals, loaded_vecs = load_pca_colour(path)
    assert np.array_equal(loaded_vals, vals) and np.array_equal(loaded_vecs, vecs)
    torch.manual_seed(0)
    a = PCAColour(path=path)(torch.full((3, 2, 2), 0.5))
    torch.manual_seed(0)
    b = PCAColour(eigvals=vals, eigvecs=vecs)(torch.full((3, 2, 2), 0.5))
    assert torch.equal(a, b)


def test_bind_reaches_nested_pca_transforms(tmp_path):
    inner = PCAColour(path=tmp_path / "missing.json")
    policy = v2.Compose([v2.RandomHorizontalFlip(), v2.RandomApply([inner], p=1.0)])
    assert bind_pca_colour(policy, np.array([0.1, 0.01, 0.001]), np.eye(3)) == 1
    assert policy(torch.zeros(3, 4, 4, dtype=torch.uint8)).shape == (3, 4, 4)
