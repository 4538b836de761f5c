"""Anchor boxes: chosen by hand, or k-means on the training boxes' shapes with 1 − IoU as distance.

YOLOv2 ("Better": dimension clusters) clusters the (w, h) of the training boxes with
``d(box, centroid) = 1 − IoU(box, centroid)``, both centred at one point, so that large boxes
do not dominate as they would under Euclidean distance. Shapes here are fractions of the image
side (boxes of images of any size compare), as the anchors in ``conf/detector/yolo.yaml`` are.
"""

from __future__ import annotations

import torch

from ..boxes import wh_iou

# YOLOv2's VOC anchors (yolo-voc.cfg, in cells of its 13×13 grid), as fractions of the image side.
YOLOV2_VOC = [[1.3221 / 13, 1.73145 / 13], [3.19275 / 13, 4.00944 / 13], [5.05587 / 13, 8.09892 / 13],
              [9.47112 / 13, 4.84053 / 13], [11.2364 / 13, 10.0071 / 13]]


def box_shapes(boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """``(w, h)`` of corner boxes ``[N, 4]`` as fractions of the image's width and height."""
    h_img, w_img = image_size
    return torch.stack([(boxes[:, 2] - boxes[:, 0]) / w_img, (boxes[:, 3] - boxes[:, 1]) / h_img], 1)


def mean_best_iou(shapes: torch.Tensor, anchors: torch.Tensor) -> float:
    """Mean over boxes of the IoU with their best anchor (YOLOv2's "Avg IOU")."""
    return float(wh_iou(shapes.float(), torch.as_tensor(anchors, dtype=torch.float32)).max(1).values.mean())


def kmeans(shapes: torch.Tensor, k: int, *, seed: int = 0, iters: int = 300) -> torch.Tensor:
    """k-means on box shapes with 1 − IoU distance (YOLOv2); centroids are the cluster medians.

    Medians rather than means, as in the common YOLO implementations: they are robust to a few
    very large boxes. Initialised by k-means++ on the same distance, seeded.

    Args:
        shapes: ``[N, 2]`` box (w, h).
        k: number of anchors (≤ number of distinct shapes).

    Returns:
        ``[k, 2]`` anchors sorted by area.

    Raises:
        ValueError: fewer boxes than ``k``.
    """
    shapes = shapes.float()
    if len(shapes) < k:
        raise ValueError(f"k-means anchors: {len(shapes)} training boxes, fewer than k={k}")
    gen = torch.Generator().manual_seed(seed)
    centroids = shapes[torch.randint(len(shapes), (1,), generator=gen)]
    while len(centroids) < k:
        d = (1 - wh_iou(shapes, centroids)).min(1).values
        if float(d.sum()) == 0:
            break
        centroids = torch.cat([centroids, shapes[torch.multinomial(d ** 2, 1, generator=gen)]])
    while len(centroids) < k:  # fewer distinct shapes than k: duplicate (harmless, IoU unchanged)
        centroids = torch.cat([centroids, centroids[:1]])
    assign = None
    for _ in range(iters):
        new = wh_iou(shapes, centroids).argmax(1)
        if assign is not None and torch.equal(new, assign):
            break
        assign = new
        for j in range(k):
            members = shapes[assign == j]
            if len(members):
                centroids[j] = members.median(0).values
    return centroids[torch.argsort(centroids.prod(1))]


def elbow(shapes: torch.Tensor, ks: range = range(1, 10), *, seed: int = 0) -> dict[int, float]:
    """Mean best-anchor IoU of k-means anchors for every k (the elbow plot of YOLOv2's figure 2)."""
    return {k: mean_best_iou(shapes, kmeans(shapes, k, seed=seed)) for k in ks if k <= len(shapes)}
