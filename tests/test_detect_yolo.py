"""YOLO: the course's shapes, target encoding (encode → decode = identity), anchors, loss, prediction."""

from __future__ import annotations

import math

import pytest
import torch

from cnnlab.detect.yolo.anchors import YOLOV2_VOC, elbow, kmeans, mean_best_iou
from cnnlab.detect.yolo.encoding import BH, BW, BX, BY, PC, decode, encode, output_shape
from cnnlab.detect.yolo.loss import yolo_loss
from cnnlab.detect.yolo.model import YOLONet
from cnnlab.detect.yolo.predict import yolo_eval, yolo_filter_boxes, yolo_head

ANCHORS = [[0.1, 0.1], [0.3, 0.15], [0.15, 0.3]]


def test_course_target_shape_19x19x5x25():
    """20 classes, 5 anchors on a 19×19 grid: y is 19×19×(5×25) = 19×19×125."""
    y = encode(torch.tensor([[10.0, 20, 200, 300]]), torch.tensor([3]), (608, 608), 19, YOLOV2_VOC, 20)
    assert y.shape == (19, 19, 5, 25) and y.reshape(19, 19, -1).shape == (19, 19, 125)


def test_course_network_shape_608_to_19x19x5x85():
    """(m, 608, 608, 3) → (m, 19, 19, 5, 85): stride 32, 5 anchors, 80 classes."""
    net = YOLONet("darknet_tiny", num_classes=80, num_anchors=5, input_size=608).eval()
    x = torch.rand(2, 608, 608, 3)  # the course's channels-last batch
    with torch.no_grad():
        out = net(x.permute(0, 3, 1, 2))
    assert tuple(out.shape) == (2, 19, 19, 5, 85) == output_shape(2, 608, 32, 5, 80)


def test_encode_decode_identity():
    g = torch.Generator().manual_seed(0)
    boxes, labels = [], []
    for i in range(12):  # one object per cell of a 4x3 block of an 8×8 grid (no slot collisions)
        cx, cy = (i % 4 + torch.rand(1, generator=g).item()) * 16, (i // 4 + torch.rand(1, generator=g).item()) * 16
        w, h = torch.rand(2, generator=g) * 40 + 4
        boxes.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
        labels.append(i % 5)
    boxes, labels = torch.tensor(boxes), torch.tensor(labels)
    y = encode(boxes, labels, (128, 128), 8, ANCHORS, 5)
    got_b, got_l = decode(y, (128, 128))
    assert len(got_b) == 12
    order = sorted(range(12), key=lambda i: (int((boxes[i, 1] + boxes[i, 3]) / 32), int((boxes[i, 0] + boxes[i, 2]) / 32)))
    torch.testing.assert_close(got_b, boxes[order], atol=1e-4, rtol=0)
    assert got_l.tolist() == labels[order].tolist()


def test_assignment_midpoint_cell_best_anchor_and_cell_units():
    # A wide box centred at (50, 70) on a 128 px image, 8×8 grid (16 px cells): cell (row 4, col 3).
    box = torch.tensor([[50 - 19.2, 70 - 9.6, 50 + 19.2, 70 + 9.6]])
    y = encode(box, torch.tensor([2]), (128, 128), 8, ANCHORS, 5)
    (r, c, a), = torch.nonzero(y[..., PC]).tolist()
    assert (r, c, a) == (4, 3, 1)  # anchor 1 is the wide one
    slot = y[r, c, a]
    assert slot[BX].item() == pytest.approx(50 / 16 - 3) and slot[BY].item() == pytest.approx(70 / 16 - 4)
    assert slot[BW].item() == pytest.approx(38.4 / 16) and slot[BH].item() == pytest.approx(19.2 / 16)
    assert slot[BW] > 1  # b_w is in cell units and may exceed 1
    assert slot[5:].tolist() == [0, 0, 1, 0, 0]


def test_two_objects_of_one_cell_take_two_anchors():
    boxes = torch.tensor([[40.0, 60, 60, 80], [41, 61, 59, 79]])  # same cell, same shape
    y = encode(boxes, torch.tensor([0, 1]), (128, 128), 8, ANCHORS, 5)
    assert int(y[..., PC].sum()) == 2 and len(torch.nonzero(y[4, 3, :, PC])) == 2  # row 4, column 3


def test_filter_boxes_is_the_course_score_threshold():
    conf = torch.tensor([[0.9], [0.9], [0.5]])
    probs = torch.tensor([[0.7, 0.3], [0.4, 0.6], [0.0, 1.0]])
    boxes = torch.arange(12.0).view(3, 4)
    scores, kept, classes = yolo_filter_boxes(conf, boxes, probs, threshold=0.6)
    # scores p_c × c_i: 0.63 (class 0), 0.54 (< 0.6, out), 0.5 (out)
    assert scores.tolist() == pytest.approx([0.63]) and classes.tolist() == [0] and kept.tolist() == [boxes[0].tolist()]


def _perfect_raw(y: torch.Tensor, anchors) -> torch.Tensor:
    """Raw outputs that yolo_head maps back onto target y (large logits for 0/1)."""
    grid = y.shape[-3]
    a = torch.tensor(anchors) * grid
    raw = torch.full_like(y, -12.0)
    obj = y[..., PC] > 0.5
    raw[..., PC][obj] = 12.0
    raw[..., BX] = torch.logit(y[..., BX].clamp(1e-4, 1 - 1e-4))
    raw[..., BY] = torch.logit(y[..., BY].clamp(1e-4, 1 - 1e-4))
    raw[..., BW] = torch.where(obj, torch.log(y[..., BW].clamp_min(1e-6) / a[:, 0]), torch.zeros_like(y[..., BW]))
    raw[..., BH] = torch.where(obj, torch.log(y[..., BH].clamp_min(1e-6) / a[:, 1]), torch.zeros_like(y[..., BH]))
    raw[..., 5:] = torch.where(y[..., 5:] > 0.5, 12.0, -12.0)
    return raw


def test_prediction_recovers_the_boxes_and_nms_removes_duplicates():
    boxes = torch.tensor([[10.0, 10, 40, 50], [70, 60, 120, 90]])
    y = encode(boxes, torch.tensor([1, 3]), (128, 128), 8, ANCHORS, 5)
    raw = _perfect_raw(y, ANCHORS)
    # a duplicate of object 0 in the neighbouring anchor with a lower confidence: NMS removes it
    r, c, a = torch.nonzero(y[..., PC])[0].tolist()
    raw[r, c, (a + 1) % 3] = raw[r, c, a]
    raw[r, c, (a + 1) % 3, PC] = 2.0
    raw[r, c, (a + 1) % 3, BW] += torch.log(torch.tensor(ANCHORS[a][0] / ANCHORS[(a + 1) % 3][0]))
    raw[r, c, (a + 1) % 3, BH] += torch.log(torch.tensor(ANCHORS[a][1] / ANCHORS[(a + 1) % 3][1]))
    out = yolo_eval(yolo_head(raw[None], ANCHORS)[0], (128, 128), 0.6, 0.5)
    assert sorted(out["labels"].tolist()) == [1, 3]
    got = out["boxes"][out["labels"].argsort()]
    torch.testing.assert_close(got, boxes, atol=1e-2, rtol=0)


def test_loss_is_small_for_the_perfect_output_and_has_gradients():
    boxes = torch.tensor([[10.0, 10, 40, 50], [70, 60, 120, 90]])
    y = encode(boxes, torch.tensor([1, 3]), (128, 128), 8, ANCHORS, 5)[None]
    perfect = yolo_loss(_perfect_raw(y[0], ANCHORS)[None], y, ANCHORS)
    raw = torch.zeros_like(y, requires_grad=True)
    bad = yolo_loss(raw, y, ANCHORS, lambda_coord=5, lambda_noobj=0.5)
    assert perfect["loss"] < 1e-2 < 1 < bad["loss"]
    bad["loss"].backward()
    assert raw.grad.abs().sum() > 0
    # λ weights scale their parts
    assert yolo_loss(raw.detach(), y, ANCHORS, lambda_noobj=1.0)["noobj"] == pytest.approx(2 * float(bad["noobj"].detach()))
    v1 = yolo_loss(raw.detach(), y, ANCHORS, objectness="sse", lambda_noobj=0.5)
    n_empty = y[..., PC].numel() - 2
    assert float(v1["noobj"]) == pytest.approx(0.5 * 0.25 * n_empty)  # σ(0)² = 1/4 per empty slot
    assert float(bad["noobj"]) == pytest.approx(0.5 * math.log(2) * n_empty, rel=1e-5)  # BCE at σ = 1/2


def test_kmeans_finds_the_clusters_and_the_elbow_rises():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.1, 0.1], [0.4, 0.2], [0.2, 0.5]])
    shapes = torch.cat([c * (1 + 0.05 * torch.randn(50, 2, generator=g)) for c in centres])
    found = kmeans(shapes, 3, seed=0)
    assert torch.allclose(found[torch.argsort(found[:, 0])], centres[torch.argsort(centres[:, 0])], atol=0.02)
    curve = elbow(shapes, range(1, 6))
    assert curve[3] > 0.9 > curve[1] and all(curve[k + 1] >= curve[k] - 1e-6 for k in range(1, 5))
    assert mean_best_iou(shapes, found) == pytest.approx(curve[3], abs=1e-6)


def test_kmeans_beats_mismatched_hand_anchors():
    shapes = torch.rand(200, 2, generator=torch.Generator().manual_seed(1)) * 0.1 + 0.05  # small objects
    assert mean_best_iou(shapes, kmeans(shapes, 5)) > mean_best_iou(shapes, torch.tensor(YOLOV2_VOC)) + 0.2


def test_ignore_iou_spares_empty_slots_that_already_predict_an_object():
    boxes = torch.tensor([[16.0, 16, 48, 48]])
    y = encode(boxes, torch.tensor([0]), (128, 128), 8, ANCHORS, 5)[None]
    raw = _perfect_raw(y[0], ANCHORS)[None].clone()
    assigned = (y[..., PC] > 0.5).nonzero()[0].tolist()
    # a second anchor of the same cell predicts the same box, confidently: without the ignore rule
    # it pays the no-object loss, with YOLOv2's ignore threshold it does not
    other = [a for a in range(len(ANCHORS)) if a != assigned[3]][0]
    anchors_c = torch.tensor(ANCHORS) * 8
    slot = raw[0, assigned[1], assigned[2], other]
    slot[:5] = raw[0, assigned[1], assigned[2], assigned[3], :5]
    slot[BW] = torch.log(y[0, assigned[1], assigned[2], assigned[3], BW] / anchors_c[other, 0])
    slot[BH] = torch.log(y[0, assigned[1], assigned[2], assigned[3], BH] / anchors_c[other, 1])
    slot[PC] = 5.0
    plain = yolo_loss(raw, y, ANCHORS)["noobj"]
    spared = yolo_loss(raw, y, ANCHORS, ignore_iou=0.6)["noobj"]
    assert float(plain) > float(spared) + 0.5 * 4.5  # BCE(σ(5), 0) ≈ 5.0, times λ_noobj = 0.5
    # a far-off confident slot is still punished, and ignore_iou=1 is the plain loss
    raw[0, 7, 7, 0, PC] = 5.0
    assert float(yolo_loss(raw, y, ANCHORS, ignore_iou=0.6)["noobj"]) > float(spared) + 2
    assert float(yolo_loss(raw, y, ANCHORS, ignore_iou=1.0)["noobj"]) == pytest.approx(
        float(yolo_loss(raw, y, ANCHORS)["noobj"]))


def test_warmup_cosine_rises_linearly_then_decays_to_the_floor():
    import io

    import torch.nn as nn

    from cnnlab.detect.module import warmup_cosine

    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine(opt, warmup=4, total=14, floor=0.05)
    lrs = []
    for _ in range(16):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:5] == pytest.approx([0.1, 0.325, 0.55, 0.775, 1.0])
    assert lrs[9] == pytest.approx(0.05 + 0.95 * 0.5)  # half-way through the cosine
    assert lrs[14] == pytest.approx(0.05) and lrs[15] == pytest.approx(0.05)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))
    # the state holds plain numbers: a checkpoint with it loads with weights_only=True
    buf = io.BytesIO()
    torch.save(sched.state_dict(), buf)
    buf.seek(0)
    assert torch.load(buf, weights_only=True)["lr_lambdas"][0]["warmup"] == 4
    with pytest.raises(ValueError, match="total >= 1"):
        warmup_cosine(opt, warmup=1, total=0)
