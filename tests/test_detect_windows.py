"""Sliding windows: the course's shapes, FC → conv equivalence on every window, detections."""

from __future__ import annotations

import pytest
import torch

from cnnlab.detect.windows import WindowClassifier, conv_windows, detections, naive_windows, to_convolutional


@pytest.mark.parametrize("side,out", [(14, 1), (16, 2), (28, 8)])
def test_course_shapes(side, out):
    torch.manual_seed(0)
    net = to_convolutional(WindowClassifier(num_classes=4).eval())
    assert net(torch.randn(1, 3, side, side)).shape == (1, 4, out, out)
    assert net.fc1.weight.shape == (400, 16, 5, 5) and net.fc2.weight.shape == (400, 400, 1, 1)


def test_fc_layers_become_convs_with_the_same_weights():
    torch.manual_seed(0)
    fc = WindowClassifier(num_classes=4).eval()
    conv = to_convolutional(fc)
    x = torch.randn(7, 3, 14, 14)
    torch.testing.assert_close(conv(x)[:, :, 0, 0], fc(x), atol=1e-5, rtol=0)
    assert torch.equal(conv.fc3.weight.flatten(1), fc.fc3.weight) and torch.equal(conv.fc1.bias, fc.fc1.bias)


@pytest.mark.parametrize("stride", [2, 4])
def test_naive_and_convolutional_agree_on_every_window(stride):
    torch.manual_seed(1)
    fc = WindowClassifier(num_classes=6).eval()
    conv = to_convolutional(fc)
    image = torch.randn(3, 61, 77)
    sizes = [14, 20, 33.5]
    a = naive_windows(fc, image, sizes, stride=stride)
    b = conv_windows(conv, image, sizes, stride=stride)
    assert a.counts == b.counts and sum(a.counts) > 100
    torch.testing.assert_close(a.boxes, b.boxes)
    assert (a.logits - b.logits).abs().max() <= 1e-5


def test_window_at_the_first_position_is_the_top_left_crop():
    """Window 0 of the 14-pixel scale is the classifier run on the image's top-left 14×14 crop."""
    torch.manual_seed(2)
    fc = WindowClassifier(num_classes=3).eval()
    image = torch.randn(3, 30, 40)
    w = naive_windows(fc, image, [14])
    torch.testing.assert_close(w.logits[0], fc(image[None, :, :14, :14])[0])
    torch.testing.assert_close(w.boxes[0], torch.tensor([0.0, 0.0, 14.0, 14.0]))
    torch.testing.assert_close(w.logits[1], fc(image[None, :, :14, 2:16])[0])
    assert w.counts == [((30 - 14) // 2 + 1) * ((40 - 14) // 2 + 1)]


def test_detections_threshold_and_nms():
    from cnnlab.detect.windows import Windows

    # three windows: two overlapping "class 0" hits and one below the threshold; background = 2
    logits = torch.log(torch.tensor([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.3, 0.3, 0.4]]))
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=torch.float32)
    d = detections(Windows(logits, boxes, [3]), background=2, threshold=0.5, iou=0.5)
    assert d["boxes"].tolist() == [[0, 0, 10, 10]] and d["labels"].tolist() == [0]
    assert d["scores"].tolist() == pytest.approx([0.9])


def test_detections_above_a_threshold_are_the_ranked_ones_above_it():
    """evaluate_windows runs NMS once at the mAP threshold and keeps the displayed boxes by score."""
    from cnnlab.detect.windows import Windows

    torch.manual_seed(0)
    xy = torch.randint(0, 100, (400, 2)).float()
    boxes = torch.cat([xy, xy + torch.randint(8, 40, (400, 2)).float()], 1)
    win = Windows(torch.randn(400, 6) * 3, boxes, [400])
    ranked = detections(win, background=5, threshold=0.01, iou=0.5)
    shown = detections(win, background=5, threshold=0.6, iou=0.5)
    keep = ranked["scores"] > 0.6
    assert 0 < int(keep.sum()) < len(ranked["scores"])
    for key in ("boxes", "scores", "labels"):
        torch.testing.assert_close(ranked[key][keep], shown[key])


def test_float64_twin_agrees_to_rounding():
    torch.manual_seed(3)
    fc = WindowClassifier(num_classes=6).double().eval()
    image = torch.randn(3, 50, 50, dtype=torch.float64) * 3
    a = naive_windows(fc, image, [14, 25])
    b = conv_windows(to_convolutional(fc), image, [14, 25])
    assert b.logits.dtype == torch.float64 and (a.logits - b.logits).abs().max() < 1e-10


def test_map_ignores_difficult_objects_as_voc_does():
    from cnnlab.detect.evaluate import mean_average_precision

    pred = [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "scores": torch.tensor([0.9]), "labels": torch.tensor([0])}]
    boxes = torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60]])
    hard = {"boxes": boxes, "labels": torch.tensor([0, 0]), "difficult": torch.tensor([False, True])}
    easy = {"boxes": boxes, "labels": torch.tensor([0, 0]), "difficult": torch.tensor([False, False])}
    assert mean_average_precision(pred, [hard])["map_50"] == pytest.approx(1.0)
    assert mean_average_precision(pred, [easy])["map_50"] == pytest.approx(0.5, abs=0.01)  # half the objects found
