"""The seven distortions: parameters, shapes/dtypes, determinism under a seed, one draw per call."""

from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from cnnlab.augment import ChannelShift, PCAColour, RandomResizedCropKeepSize


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _image(c: int = 3, h: int = 24, w: int = 24, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (c, h, w), dtype=torch.uint8, generator=g)


def _pca() -> PCAColour:
    vecs = torch.linalg.qr(torch.tensor([[1.0, 0.2, 0.1], [1.0, -0.3, 0.4], [1.0, 0.1, -0.5]]))[0]
    return PCAColour(eigvals=[0.2, 0.05, 0.01], eigvecs=vecs.numpy())


# The course's seven, as the policies build them (torchvision v2 where it has them).
SEVEN = {
    "mirroring": lambda: v2.RandomHorizontalFlip(p=0.5),
    "random_cropping": lambda: RandomResizedCropKeepSize(scale=(0.5, 1.0)),
    "rotation": lambda: v2.RandomRotation(degrees=15),
    "shearing": lambda: v2.RandomAffine(degrees=0, shear=(-10, 10, -10, 10)),
    "local_warping": lambda: v2.ElasticTransform(alpha=30.0, sigma=5.0),
    "colour_shifting": lambda: ChannelShift(max_shift=20),
    "pca_colour": _pca,
}


@pytest.mark.parametrize("name", SEVEN)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("shape", [(1, 24, 30), (3, 24, 24), (2, 3, 24, 24)])
def test_shape_and_dtype_kept(name, dtype, shape):
    x = torch.randint(0, 256, shape, dtype=torch.uint8)
    x = x if dtype == torch.uint8 else x.float() / 255
    y = SEVEN[name]()(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    if dtype == torch.float32:
        assert 0.0 <= y.min() and y.max() <= 1.0


@pytest.mark.parametrize("name", SEVEN)
def test_deterministic_under_a_seed(name):
    t, x = SEVEN[name](), _image()
    outs = []
    for seed in (0, 0, 1, 2, 3, 4):
        torch.manual_seed(seed)
        outs.append(t(x))
    assert torch.equal(outs[0], outs[1])
    assert len({o.numpy().tobytes() for o in outs[1:]}) > 1, "the seed does not change the draw"


@pytest.mark.parametrize("name", ["random_cropping", "rotation", "shearing", "local_warping", "colour_shifting",
                                  "pca_colour"])
def test_one_draw_for_all_inputs_of_a_call(name):
    """Paired inputs (a siamese pair, image + mask) get the same distortion."""
    x = _image()
    torch.manual_seed(1)  # seed 0 draws a rotation of -0.1°, which nearest interpolation leaves as is
    a, b = SEVEN[name]()(tv_tensors.Image(x), tv_tensors.Image(x.clone()))
    assert isinstance(a, tv_tensors.Image) and torch.equal(a, b)
    assert not torch.equal(a, x)


def test_mirroring_flips_columns():
    x = _image()
    assert torch.equal(v2.RandomHorizontalFlip(p=1.0)(x), x.flip(-1))
    assert torch.equal(v2.RandomHorizontalFlip(p=0.0)(x), x)


def test_rotation_by_90_degrees_is_rot90():
    x = _image(h=15, w=15)
    assert torch.equal(v2.RandomRotation(degrees=(90, 90))(x), torch.rot90(x, 1, dims=(-2, -1)))


def test_shearing_matches_the_affine_kernel():
    x = _image()
    expected = F.affine(x, angle=0.0, translate=[0, 0], scale=1.0, shear=[12.0, -5.0])
    assert torch.equal(v2.RandomAffine(degrees=0, shear=(12, 12, -5, -5))(x), expected)
    assert not torch.equal(expected, x)


def test_local_warping_moves_pixels_by_alpha():
    x = _image()
    assert torch.equal(v2.ElasticTransform(alpha=0.0, sigma=5.0)(x), x)
    torch.manual_seed(0)
    small = (v2.ElasticTransform(alpha=5.0, sigma=3.0)(x).float() - x.float()).abs().mean()
    torch.manual_seed(0)
    large = (v2.ElasticTransform(alpha=60.0, sigma=3.0)(x).float() - x.float()).abs().mean()
    assert 0 < small < large


def test_random_cropping_keeps_size_and_crops_the_drawn_box():
    x = _image(h=20, w=30)
    t = RandomResizedCropKeepSize(scale=(0.25, 0.25), ratio=(1.0, 1.0))
    torch.manual_seed(3)
    params = t.make_params([x])
    assert params["size"] == [20, 30]
    assert params["height"] * params["width"] == pytest.approx(0.25 * 600, rel=0.1)
    torch.manual_seed(3)
    expected = F.resized_crop(x, params["top"], params["left"], params["height"], params["width"], [20, 30])
    assert torch.equal(t(x), expected)


def test_random_cropping_with_full_scale_is_identity():
    x = _image()
    assert torch.equal(RandomResizedCropKeepSize(scale=(1.0, 1.0), ratio=(1.0, 1.0))(x), x)


def test_colour_shift_adds_one_bounded_offset_per_channel():
    x = torch.full((3, 8, 8), 128, dtype=torch.uint8)  # mid-grey: no clamping
    t = ChannelShift(max_shift=20)
    offsets = []
    for seed in range(20):
        torch.manual_seed(seed)
        d = t(x).int() - 128
        per_channel = d.flatten(1)
        assert torch.equal(per_channel, per_channel[:, :1].expand_as(per_channel)), "offset varies within a channel"
        offsets.append(per_channel[:, 0])
    offsets = torch.stack(offsets)
    assert offsets.abs().max() <= 20 and offsets.abs().max() >= 10
    assert (offsets[:, 0] != offsets[:, 1]).any(), "channels must be shifted independently"


def test_colour_shift_float_and_uint8_agree_and_clamp():
    x = torch.tensor([0, 100, 255], dtype=torch.uint8).view(1, 1, 3).expand(3, 1, 3).contiguous()
    t = ChannelShift(max_shift=50)
    torch.manual_seed(0)
    u = t(x)
    torch.manual_seed(0)
    f = t(x.float() / 255)
    assert torch.allclose(f * 255, u.float(), atol=0.51)
    assert u.min() >= 0 and u.max() <= 255
    with pytest.raises(ValueError, match="max_shift"):
        ChannelShift(max_shift=-1)
