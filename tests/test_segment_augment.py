"""Joint augmentation keeps image and mask aligned (a known pattern), colour touches the image only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from cnnlab.segment.data import IGNORE, eval_transforms, train_transforms
from cnnlab.segment.losses import dice_loss, segmentation_loss

K = 4  # classes of the pattern


def _pattern(h: int = 64, w: int = 96) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    """An asymmetric pattern of 8-pixel cells; the image's red channel codes each pixel's class."""
    yy, xx = np.mgrid[0:h, 0:w]
    mask = ((yy // 8) * 3 + (xx // 8) * (1 + (yy // 16) % 2)) % K
    mask[:16, :24] = 3  # an asymmetric corner block: a flip of only one of the two would show
    red = (mask * (255 // (K - 1))).astype(np.uint8)
    image = np.stack([red, np.full_like(red, 90), 255 - red])
    return tv_tensors.Image(torch.from_numpy(image)), tv_tensors.Mask(torch.from_numpy(mask.astype(np.uint8)))


def _agreement(image: torch.Tensor, mask: torch.Tensor) -> float:
    """Share of labelled interior pixels (same class in their 3×3 neighbourhood) whose red channel
    decodes to their mask class; at boundaries the bilinear image blends what the nearest mask does not."""
    decoded = torch.round(image[0] * (K - 1)).long()
    m = mask.long()
    padded = torch.nn.functional.pad(m[None, None].float(), (1, 1, 1, 1), mode="replicate")[0, 0]
    interior = torch.ones_like(m, dtype=torch.bool)
    for dy in range(3):
        for dx in range(3):
            interior &= padded[dy:dy + m.shape[0], dx:dx + m.shape[1]].long() == m
    valid = interior & (m != IGNORE)
    return (decoded[valid] == m[valid]).float().mean().item()


@pytest.mark.parametrize("seed", range(6))
def test_geometric_augmentation_moves_the_mask_with_the_image(seed):
    torch.manual_seed(seed)
    tf = train_transforms((48, 72), rotation=15, elastic_p=1.0, colour=(0, 0, 0, 0))
    image, mask = tf(*_pattern())
    assert image.dtype == torch.float32 and image.shape == (3, 48, 72) and mask.shape == (48, 72)
    assert _agreement(image, mask) > 0.97
    # the check has teeth: a mask that missed the flip (or the warp) disagrees badly
    assert _agreement(image, torch.flip(mask, dims=[-1])) < 0.6
    assert set(torch.unique(mask).tolist()) <= set(range(K)) | {IGNORE}  # nearest: no blended labels


def test_rotation_marks_pixels_from_outside_the_image_as_ignored():
    torch.manual_seed(0)
    tf = train_transforms((64, 96), crop_scale=(1.0, 1.0), rotation=30, elastic_p=0, colour=(0, 0, 0, 0))
    _, mask = tf(*_pattern())
    assert (mask == IGNORE).any()


def test_colour_jitter_changes_the_image_only():
    torch.manual_seed(0)
    image, mask = _pattern()
    tf = train_transforms((64, 96), flip=False, crop_scale=(1.0, 1.0), rotation=0, elastic_p=0,
                          colour=(0.5, 0.5, 0.5, 0.1))
    out_img, out_mask = tf(image, mask)
    assert torch.equal(out_mask, mask)
    assert not torch.allclose(out_img, eval_transforms(None)(image))


def test_losses():
    target = torch.tensor([[[0, 1], [2, IGNORE]]])
    perfect = torch.nn.functional.one_hot(torch.tensor([[[0, 1], [2, 0]]]), 3).permute(0, 3, 1, 2).float() * 50
    assert dice_loss(perfect, target).item() == pytest.approx(0, abs=1e-4)
    assert segmentation_loss("ce", perfect, target).item() == pytest.approx(0, abs=1e-4)
    wrong = perfect.roll(1, dims=1)
    assert dice_loss(wrong, target).item() > 0.5
    # weighted CE: up-weighting the class that is wrong raises the loss
    half = perfect.clone()
    half[0, :, 0, 1] = torch.tensor([50.0, 0, 0])  # pixel of class 1 predicted as 0
    lo = segmentation_loss("weighted_ce", half, target, [1, 1, 1])
    hi = segmentation_loss("weighted_ce", half, target, [1, 5, 1])
    assert hi > lo
    with pytest.raises(ValueError, match="segmenter.loss"):
        segmentation_loss("focal", perfect, target)
