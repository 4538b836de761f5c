"""The region-proposal family: torchvision's Faster R-CNN from scratch, and R-CNN in miniature.

* :class:`FasterRCNN`: ``torchvision.models.detection.FasterRCNN`` on a registry backbone's
  ``forward_features`` (randomly initialised: no weights of any kind), one feature map, an RPN
  with anchors sized for small images, ``min_size = max_size = input_size`` (inputs arrive
  letterboxed). The backbone's batch norm stays trainable (torchvision freezes it only for
  pretrained backbones), as its maintainers advise for training from scratch.
* :class:`RCNNMini`: the course's R-CNN in miniature. Class-agnostic proposals
  (:func:`proposals`: multi-scale windows ranked by edge density, an Edge-Boxes-like score, since
  OpenCV's selective search is not in opencv-python-headless), each cropped, resized and
  classified *one at a time* by a small CNN with a background class. It is slow by design.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.detection import FasterRCNN as TVFasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign, batched_nms, box_iou, nms, roi_align

from ..models import create_model
from .module import DetectorModule
from .yolo.module import MEAN, STD


class _Trunk(nn.Module):
    """A registry backbone's ``forward_features`` with the ``out_channels`` torchvision asks for."""

    def __init__(self, backbone: nn.Module, input_size: int):
        super().__init__()
        self.body = backbone
        with torch.no_grad():
            self.out_channels = backbone.eval().forward_features(torch.zeros(1, 3, input_size, input_size)).shape[1]
        backbone.train()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body.forward_features(x)


class FasterRCNN(DetectorModule):
    """Faster R-CNN (torchvision) from scratch on a registry backbone.

    Args:
        classes: class names (no background; torchvision's label 0 is background, so labels shift by 1).
        backbone: registry name; ``backbone_kwargs`` go to its builder.
        input_size: side of the square (letterboxed) input.
        anchor_sizes: RPN anchor sides in pixels; ``aspect_ratios``: their h/w ratios.
        rpn_post_nms_top_n: proposals kept per image in training (a third of them at test time).
        box_head_width: width of the two FC layers of the box head.
        score, iou: display score threshold and NMS IoU.
    """

    kind = "faster_rcnn"

    def __init__(self, classes: list[str], backbone: str, input_size: int, backbone_kwargs: dict[str, Any] | None = None,
                 anchor_sizes: list[int] = (16, 32, 64), aspect_ratios: list[float] = (0.5, 1.0, 2.0),
                 score: float = 0.6, iou: float = 0.5, rpn_post_nms_top_n: int = 300, box_head_width: int = 256,
                 optim: dict[str, Any] | None = None, scheduler: dict[str, Any] | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.hparams["kind"] = self.kind
        trunk = _Trunk(create_model(backbone, num_classes=0, **(backbone_kwargs or {})), input_size)
        # torchvision's default box head is 1024 wide (12.8 M weights on 256 channels): sized down here.
        box_head = TwoMLPHead(trunk.out_channels * 7 * 7, box_head_width)
        anchors = AnchorGenerator(sizes=(tuple(anchor_sizes),), aspect_ratios=(tuple(aspect_ratios),))
        self.net = TVFasterRCNN(
            trunk, min_size=input_size, max_size=input_size,
            image_mean=list(MEAN), image_std=list(STD), rpn_anchor_generator=anchors,
            box_roi_pool=MultiScaleRoIAlign(["0"], output_size=7, sampling_ratio=2),
            box_head=box_head, box_predictor=FastRCNNPredictor(box_head_width, len(classes) + 1),
            rpn_pre_nms_top_n_train=1000, rpn_pre_nms_top_n_test=500,
            rpn_post_nms_top_n_train=rpn_post_nms_top_n, rpn_post_nms_top_n_test=rpn_post_nms_top_n // 3,
            box_batch_size_per_image=128, box_detections_per_img=100, box_nms_thresh=iou)

    def losses(self, images, targets):
        tv = [{"boxes": torch.as_tensor(t["boxes"]).float(), "labels": t["labels"] + 1} for t in targets]
        parts = self.net(images, tv)
        return {"loss": sum(parts.values()), **{k.removeprefix("loss_"): v for k, v in parts.items()}}

    @torch.no_grad()
    def detect(self, images, score: float, iou: float):
        self.net.roi_heads.score_thresh, self.net.roi_heads.nms_thresh = score, iou
        was = self.net.training
        out = self.net.eval()(images)
        self.net.train(was)
        return [{"boxes": o["boxes"], "scores": o["scores"], "labels": o["labels"] - 1} for o in out]


def proposals(image: torch.Tensor, sizes: list[int], stride_frac: float = 0.5, top_k: int = 100,
              aspects: tuple[float, ...] = (0.75, 1.0, 1.33)) -> torch.Tensor:
    """Class-agnostic proposals of one float image ``[3, H, W]``: windows ranked by edge density.

    Every window (``sizes`` × ``aspects``, stride ``stride_frac`` of its size) is scored by the
    mean gradient magnitude inside it minus that of a ring around it, so that windows enclosing
    a whole edgy object beat those cutting through it (the idea of Edge Boxes, simplified). The
    ``top_k`` after NMS at 0.7 are returned as corners ``[K, 4]``.
    """
    grey = image.mean(0, keepdim=True)[None]
    gx = F.conv2d(grey, torch.tensor([[[[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]]]), padding=1)
    gy = F.conv2d(grey, torch.tensor([[[[-1.0, -2, -1], [0, 0, 0], [1, 2, 1]]]]), padding=1)
    mag = (gx ** 2 + gy ** 2).sqrt()[0, 0]
    integral = F.pad(mag.cumsum(0).cumsum(1), (1, 0, 1, 0))
    h, w = mag.shape
    boxes = []
    for s in sizes:
        for a in aspects:
            bw, bh = round(s * a ** 0.5), round(s / a ** 0.5)
            if bw > w or bh > h:
                continue
            step = max(1, round(s * stride_frac))
            ys, xs = torch.meshgrid(torch.arange(0, h - bh + 1, step), torch.arange(0, w - bw + 1, step), indexing="ij")
            boxes.append(torch.stack([xs, ys, xs + bw, ys + bh], -1).reshape(-1, 4))
    if not boxes:
        return torch.zeros(0, 4)
    b = torch.cat(boxes).float()

    def mean_in(bb):
        x1, y1 = bb[:, 0].clamp(0, w).long(), bb[:, 1].clamp(0, h).long()
        x2, y2 = bb[:, 2].clamp(0, w).long(), bb[:, 3].clamp(0, h).long()
        area = ((x2 - x1) * (y2 - y1)).clamp_min(1)
        return (integral[y2, x2] - integral[y1, x2] - integral[y2, x1] + integral[y1, x1]), area

    inner, a_in = mean_in(b)
    pad = torch.stack([-(b[:, 2] - b[:, 0]) / 4, -(b[:, 3] - b[:, 1]) / 4, (b[:, 2] - b[:, 0]) / 4, (b[:, 3] - b[:, 1]) / 4], 1)
    outer, a_out = mean_in(b + pad)
    ring = (outer - inner) / (a_out - a_in).clamp_min(1)
    score = inner / a_in - ring
    keep = nms(b, score, 0.7)[:top_k]
    return b[keep]


class RCNNMini(DetectorModule):
    """R-CNN in miniature: proposals, then a CNN on each warped proposal, one at a time.

    Training crops: every ground-truth box (its class) and ``negatives`` random windows per image
    with IoU < 0.3 to all objects (background, class 0 of the classifier).

    Args:
        classes: class names (no background).
        backbone: registry name of the crop classifier; ``crop``: side its crops are warped to.
        proposal_sizes: window sides of :func:`proposals`; ``top_k`` proposals per image.
    """

    kind = "rcnn_mini"

    def __init__(self, classes: list[str], input_size: int, backbone: str = "darknet_tiny",
                 backbone_kwargs: dict[str, Any] | None = None, crop: int = 32,
                 proposal_sizes: list[int] = (20, 32, 48, 64), top_k: int = 100, negatives: int = 8,
                 score: float = 0.6, iou: float = 0.5, optim: dict[str, Any] | None = None,
                 scheduler: dict[str, Any] | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.hparams["kind"] = self.kind
        self.net = create_model(backbone, num_classes=len(classes) + 1, **(backbone_kwargs or {}))
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def _crops(self, image: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        c = self.hparams.crop
        crops = roi_align(image[None], [boxes.float()], output_size=(c, c), aligned=True)
        return (crops - self.mean) / self.std

    def losses(self, images, targets):
        xs, ys = [], []
        for img, t in zip(images, targets):
            gt = torch.as_tensor(t["boxes"]).float()
            h, w = img.shape[-2:]
            n = self.hparams.negatives * 3
            side = torch.empty(n).uniform_(16, min(h, w) / 2)
            x1, y1 = torch.rand(n) * (w - side), torch.rand(n) * (h - side)
            neg = torch.stack([x1, y1, x1 + side, y1 + side], 1).to(img)
            if len(gt):
                neg = neg[box_iou(neg, gt.to(img)).max(1).values < 0.3]
            neg = neg[: self.hparams.negatives]
            xs.append(self._crops(img, torch.cat([gt.to(img), neg])))
            ys.append(torch.cat([t["labels"] + 1, torch.zeros(len(neg), dtype=torch.long)]).to(img.device))
        logits = self.net(torch.cat(xs))
        y = torch.cat(ys)
        loss = F.cross_entropy(logits, y)
        return {"loss": loss, "acc": (logits.argmax(1) == y).float().mean().detach()}

    @torch.no_grad()
    def detect(self, images, score: float, iou: float):
        out = []
        for img in images:
            props = proposals(img.cpu(), list(self.hparams.proposal_sizes), top_k=self.hparams.top_k).to(img)
            probs = [self.net(self._crops(img, p[None])).softmax(1)[0] for p in props]  # one at a time, as R-CNN
            probs_t = torch.stack(probs) if probs else torch.zeros(0, len(self.hparams.classes) + 1).to(img)
            s, lab = probs_t[:, 1:].max(1) if len(probs_t) else (probs_t[:, 0], probs_t[:, 0].long())
            keep = s >= score
            b, s, lab = props[keep], s[keep], lab[keep]
            k = batched_nms(b, s, lab, iou)
            out.append({"boxes": b[k], "scores": s[k], "labels": lab[k]})
        return out
