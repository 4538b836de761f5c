"""Deterministic test-time crops: positions against torchvision and a coordinate-coded image."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as nnf
from torchvision.transforms.v2 import functional as F

from cnnlab.evaluate.multicrop import (CENTRE, FIVE, FLIP, TEN, Crop, MultiCropPredictor, apply_crop, centre_crop,
                                       crops_batch, five_crop, multicrop_embed, parse_crop, parse_crop_set,
                                       resize_for_crops, ten_crop)

H, W, h, w = 9, 12, 4, 7  # odd vertical margin (5): the centre rounds as torchvision's does


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def coords(batch: int = 2) -> torch.Tensor:
    """[B, 2, H, W]: channel 0 holds each pixel's row, channel 1 its column."""
    rows = torch.arange(H, dtype=torch.float32).view(H, 1).expand(H, W)
    cols = torch.arange(W, dtype=torch.float32).view(1, W).expand(H, W)
    return torch.stack([rows, cols]).expand(batch, 2, H, W).clone()


def window(top: int, left: int, flip: bool) -> torch.Tensor:
    """What a crop at (top, left) must contain; for a mirrored crop, (top, left) is in the mirror."""
    r = torch.arange(top, top + h, dtype=torch.float32).view(h, 1).expand(h, w)
    c = torch.arange(left, left + w, dtype=torch.float32).view(1, w).expand(h, w)
    if flip:
        c = (W - 1) - c  # column j of the mirrored image is column W-1-j of the original
    return torch.stack([r, c])


def test_ten_crop_gives_the_ten_expected_windows():
    crops = ten_crop(coords(), (h, w))
    ct, cl = 2, 2  # round(5 / 2) = 2 (round half to even), round(5 / 2) = 2
    expected = [(0, 0), (0, W - w), (H - h, 0), (H - h, W - w), (ct, cl)]
    want = [window(t, l, False) for t, l in expected] + [window(t, l, True) for t, l in expected]
    assert len(crops) == 10
    for got, exp in zip(crops, want):
        assert got.shape == (2, 2, h, w)
        assert torch.equal(got[0], exp) and torch.equal(got[1], exp)
    # Ten distinct views: no two crops coincide.
    assert len({tuple(c[0].flatten().tolist()) for c in crops}) == 10


def test_crop_specs_reproduce_torchvision_five_and_ten_crop():
    x = torch.randn(3, 1, H, W)
    for specs, ref in ((FIVE, five_crop(x, (h, w))), (TEN, ten_crop(x, (h, w)))):
        assert len(specs) == len(ref)
        for spec, r in zip(specs, ref):
            assert torch.equal(apply_crop(x, spec, (h, w)), r)
    assert torch.equal(apply_crop(x, CENTRE[0], (h, w)), centre_crop(x, (h, w)))
    assert torch.equal(centre_crop(x, (h, w)), F.center_crop(x, [h, w]))


def test_fractional_position_and_scale():
    x = coords(1)
    got = apply_crop(x, Crop(top=0.4, left=0.8), (h, w))
    assert torch.equal(got[0], window(round(0.4 * (H - h)), round(0.8 * (W - w)), False))
    # scale past the image clamps the window to the whole image, then resizes it to the crop size.
    whole = apply_crop(x, Crop(scale=10.0), (h, w))
    assert torch.allclose(whole, F.resize(x, [h, w], antialias=True))
    # scale 0.5 zooms in: the centre 2×4 window (rounded), upsampled.
    zoom = apply_crop(x, Crop(scale=0.5), (h, w))
    wh, ww = 2, 4
    top, left = round((H - wh) / 2), round((W - ww) / 2)
    assert torch.allclose(zoom, F.resize(x[..., top:top + wh, left:left + ww], [h, w], antialias=True))


def test_crops_batch_is_crop_major():
    x = torch.randn(3, 1, H, W)
    out = crops_batch(x, FLIP, (h, w))
    assert out.shape == (6, 1, h, w)
    assert torch.equal(out[:3], centre_crop(x, (h, w)))
    assert torch.equal(out[3:], centre_crop(F.horizontal_flip(x), (h, w)))


def test_parse_crop_sets():
    assert parse_crop_set("ten") == TEN and parse_crop_set("centre") == CENTRE
    got = parse_crop_set(["bottom_right", {"pos": "centre", "flip": True, "scale": 1.2}, {"top": 0.25, "left": 0.0}])
    assert got == (Crop(1.0, 1.0), Crop(0.5, 0.5, True, 1.2), Crop(0.25, 0.0))
    for bad in ("eleven", [], ["middle"], [{"pos": "centre", "zoom": 2}], [{"top": 1.5}]):
        with pytest.raises(ValueError):
            parse_crop_set(bad)
    with pytest.raises(ValueError, match="positive"):
        parse_crop({"scale": 0})


def test_resize_and_size_errors():
    assert resize_for_crops([3, 224, 224], 1.143) == (256, 256)
    assert resize_for_crops([32, 32], 1.143) == (37, 37)
    with pytest.raises(ValueError, match="resize"):
        resize_for_crops([32, 32], 0.9)
    with pytest.raises(ValueError, match="smaller than"):
        apply_crop(torch.zeros(1, 1, 8, 8), Crop(), (9, 9))


def test_predictor_averages_softmax_over_ten_crops():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * (h - 2) * (w - 2), 5)).eval()
    x = torch.randn(3, 1, H, W)
    expected = torch.stack([torch.softmax(model(c), 1) for c in ten_crop(x, (h, w))]).mean(0)
    with torch.no_grad():
        got = MultiCropPredictor(model, TEN, (h, w))(x)
    assert torch.allclose(got, expected.detach(), atol=1e-6)
    assert torch.allclose(got.sum(1), torch.ones(3))


def test_multicrop_embed_is_normalised_mean_of_normalised_crops():
    torch.manual_seed(0)
    lin = nn.Linear(h * w, 6)

    def embed(x):
        return lin(x.flatten(1))

    x = torch.randn(4, 1, H, W)
    a = nnf.normalize(embed(centre_crop(x, (h, w))), dim=1)
    b = nnf.normalize(embed(centre_crop(F.horizontal_flip(x), (h, w))), dim=1)
    expected = (a + b) / (a + b).norm(dim=1, keepdim=True)
    got = multicrop_embed(embed, x, FLIP, (h, w))
    assert torch.allclose(got, expected, atol=1e-6)
    assert torch.allclose(got.norm(dim=1), torch.ones(4))
