"""The course's IoU and NMS against a direct formula and torchvision's box_iou / nms / batched_nms."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import batched_nms as tv_batched_nms
from torchvision.ops import box_iou as tv_box_iou
from torchvision.ops import nms as tv_nms

from cnnlab.detect.boxes import batched_nms, box_iou, iou, nms, wh_iou


def random_boxes(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 50
    wh = torch.rand(n, 2, generator=g) * 30 + 1
    return torch.cat([xy, xy + wh], 1)


def test_course_example_is_one_seventh():
    assert iou((2, 1, 4, 3), (1, 2, 3, 4)) == pytest.approx(1 / 7)


def test_iou_edge_cases():
    assert iou((0, 0, 1, 1), (1, 1, 2, 2)) == 0.0          # touching corners
    assert iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0          # apart
    assert iou((0, 0, 2, 2), (0, 0, 2, 2)) == 1.0
    assert iou((0, 0, 4, 4), (1, 1, 3, 3)) == pytest.approx(4 / 16)   # one inside the other


def test_iou_matches_torchvision():
    a, b = random_boxes(20, 0), random_boxes(15, 1)
    torch.testing.assert_close(box_iou(a, b), tv_box_iou(a.double(), b.double()), atol=1e-9, rtol=0)


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_equals_torchvision(threshold):
    for seed in range(5):
        boxes = random_boxes(40, seed)
        scores = torch.rand(40, generator=torch.Generator().manual_seed(100 + seed))
        assert nms(boxes, scores, threshold).tolist() == tv_nms(boxes, scores, threshold).tolist()


def test_batched_nms_equals_torchvision_and_keeps_other_classes():
    boxes = random_boxes(60, 7)
    scores = torch.rand(60, generator=torch.Generator().manual_seed(8))
    labels = torch.randint(0, 4, (60,), generator=torch.Generator().manual_seed(9))
    assert batched_nms(boxes, scores, labels, 0.5).tolist() == tv_batched_nms(boxes, scores, labels, 0.5).tolist()
    # Two identical boxes of different classes both survive; of the same class only the better one.
    same = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10]])
    s = torch.tensor([0.9, 0.8])
    assert batched_nms(same, s, torch.tensor([0, 1])).tolist() == [0, 1]
    assert batched_nms(same, s, torch.tensor([2, 2])).tolist() == [0]


def test_wh_iou_is_iou_at_a_common_centre():
    wh1, wh2 = torch.tensor([[4.0, 2.0], [1.0, 1.0]]), torch.tensor([[2.0, 4.0], [4.0, 2.0]])
    want = [[iou((-2, -1, 2, 1), (-1, -2, 1, 2)), 1.0], [1 / 8, 1 / 8]]
    torch.testing.assert_close(wh_iou(wh1, wh2), torch.tensor(want))
