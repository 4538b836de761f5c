"""Letterbox resizing and the augmentations that move boxes with the image (torchvision v2)."""

from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from cnnlab.detect.transforms import Letterbox, augmentation, detector_transform, unletterbox


def _sample(h=60, w=100):
    img = torch.zeros(3, h, w, dtype=torch.uint8)
    img[:, 10:30, 20:50] = 255  # one white object
    boxes = tv_tensors.BoundingBoxes(torch.tensor([[20.0, 10, 50, 30]]), format="XYXY", canvas_size=(h, w))
    return tv_tensors.Image(img), {"boxes": boxes, "labels": torch.tensor([1]), "difficult": torch.tensor([False]),
                                   "landmarks": torch.full((1, 5, 2), float("nan")), "image_id": "x"}


def test_letterbox_keeps_aspect_pads_centred_and_round_trips():
    img, t = _sample()
    out, t2 = Letterbox(64)(img, t)
    assert out.shape == (3, 64, 64)
    sx, sy, left, top = t2["letterbox"].tolist()
    left, top = int(left), int(top)
    assert sx == pytest.approx(0.64) and sy == pytest.approx(38 / 60) and left == 0 and top == 13
    assert (out[:, :top] == 114).all() and (out[:, top + 38:] == 114).all()  # grey bars above and below
    back = unletterbox(torch.as_tensor(t2["boxes"]), t2["letterbox"], (60, 100))
    torch.testing.assert_close(back, torch.tensor([[20.0, 10, 50, 30]]), atol=0.5, rtol=0)


def test_flip_moves_the_box_with_the_pixels():
    img, t = _sample()
    flip = v2.Compose([v2.RandomHorizontalFlip(p=1.0)])
    out, t2 = flip(img, t)
    x1, y1, x2, y2 = t2["boxes"][0].int().tolist()
    assert (x1, y1, x2, y2) == (50, 10, 80, 30)
    assert (out[:, y1:y2, x1:x2] == 255).all() and out.sum() == img.sum()


@pytest.mark.parametrize("policy", ["colour_scale", "photo"])
def test_random_augmentations_keep_boxes_on_their_object(policy):
    torch.manual_seed(0)
    tf = v2.Compose(augmentation(policy))
    for _ in range(10):
        img, t = _sample()
        out, t2 = tf(img, t)
        assert len(t2["boxes"]) == len(t2["labels"]) == len(t2["difficult"])
        for x1, y1, x2, y2 in t2["boxes"].round().int().tolist():
            inside = out[:, y1:y2, x1:x2].float().mean()
            assert inside > out.float().mean()  # the bright object stays inside its box


def test_detector_transform_outputs_float_square_and_drops_landmarks():
    img, t = _sample()
    out, t2 = detector_transform(64, "none")(img, t)
    assert out.dtype == torch.float32 and out.shape == (3, 64, 64) and 0 <= out.min() and out.max() <= 1
    assert "landmarks" not in t2 and t2["image_id"] == "x"
