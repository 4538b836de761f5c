"""YOLO target encoding: S×S grid, B anchors per cell, S×S×B×(5+C) targets, and decoding back.

Conventions (the course's, week 3 "YOLO algorithm" and "anchor boxes"):

* ``y`` of one (cell, anchor) slot is ``(p_c, b_x, b_y, b_h, b_w, c_1, ..., c_C)`` (indices
  :data:`PC`, :data:`BX`, :data:`BY`, :data:`BH`, :data:`BW`, then ``5 + class``).
* An object belongs to the cell holding its midpoint; ``b_x, b_y`` ∈ [0, 1) locate the midpoint
  inside that cell (top-left (0, 0)); ``b_h, b_w`` are the box's size in cell units and may
  exceed 1.
* Inside that cell it takes the anchor whose shape has the highest IoU with the box, both
  centred at the same point (:func:`cnnlab.detect.boxes.wh_iou`). When two objects of one cell
  want the same anchor, the second takes the cell's next-best free anchor; an object with no
  free anchor left is dropped (the course: "this algorithm doesn't handle that case well").
* Anchors are given as ``(w, h)`` fractions of the input side, so one list serves every grid.
"""

from __future__ import annotations

import torch

from ..boxes import wh_iou

PC, BX, BY, BH, BW = 0, 1, 2, 3, 4


def anchors_in_cells(anchors: torch.Tensor | list, grid: int) -> torch.Tensor:
    """Anchors ``[B, 2]`` (w, h) as fractions of the input side → in grid-cell units."""
    return torch.as_tensor(anchors, dtype=torch.float32) * grid


def encode(boxes: torch.Tensor, labels: torch.Tensor, image_size: tuple[int, int], grid: int,
           anchors: torch.Tensor | list, num_classes: int) -> torch.Tensor:
    """The S×S×B×(5+C) target of one image.

    Args:
        boxes: ``[N, 4]`` corner boxes ``(x1, y1, x2, y2)`` in pixels of an image of ``image_size``.
        labels: ``[N]`` class indices in ``[0, num_classes)``.
        image_size: ``(H, W)`` in pixels.
        grid: S, cells per side.
        anchors: ``[B, 2]`` anchor ``(w, h)`` as fractions of the image side.

    Returns:
        ``float32 [S, S, B, 5 + C]``, indexed ``[row (y), column (x), anchor, :]``.
    """
    h_img, w_img = image_size
    anchors_c = anchors_in_cells(anchors, grid)
    out = torch.zeros(grid, grid, len(anchors_c), 5 + num_classes)
    if len(boxes) == 0:
        return out
    boxes = torch.as_tensor(boxes, dtype=torch.float32)
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 / w_img * grid
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 / h_img * grid
    bw = (boxes[:, 2] - boxes[:, 0]) / w_img * grid
    bh = (boxes[:, 3] - boxes[:, 1]) / h_img * grid
    col = cx.floor().clamp(0, grid - 1).long()
    row = cy.floor().clamp(0, grid - 1).long()
    ranks = wh_iou(torch.stack([bw, bh], 1), anchors_c).argsort(dim=1, descending=True)
    for i in range(len(boxes)):
        free = [int(a) for a in ranks[i] if out[row[i], col[i], a, PC] == 0]
        if not free:
            continue
        slot = out[row[i], col[i], free[0]]
        slot[PC] = 1.0
        slot[BX], slot[BY] = cx[i] - col[i], cy[i] - row[i]
        slot[BH], slot[BW] = bh[i], bw[i]
        slot[5 + int(labels[i])] = 1.0
    return out


def cell_offsets(grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Column and row index of every cell, shaped ``[S, S, 1]`` to broadcast over anchors."""
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    return cols[..., None].float(), rows[..., None].float()


def to_corners(y: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Boxes of every slot of ``[..., S, S, B, ≥5]`` (course layout) as pixel corners ``[..., S, S, B, 4]``.

    The course's ``yolo_boxes_to_corners``, after putting the cell-relative midpoint back on the grid.
    """
    grid = y.shape[-3]
    h_img, w_img = image_size
    cols, rows = cell_offsets(grid)
    cx = (cols.to(y) + y[..., BX]) / grid * w_img
    cy = (rows.to(y) + y[..., BY]) / grid * h_img
    half_w = y[..., BW] / grid * w_img / 2
    half_h = y[..., BH] / grid * h_img / 2
    return torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=-1)


def decode(target: torch.Tensor, image_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`encode`: the boxes ``[N, 4]`` (pixels) and labels ``[N]`` of the filled slots.

    The order is the slots' (row, column, anchor) order, not the input order.
    """
    filled = target[..., PC] > 0.5
    boxes = to_corners(target, image_size)[filled]
    labels = target[..., 5:].argmax(-1)[filled]
    return boxes, labels


def output_shape(batch: int, input_size: int, stride: int, num_anchors: int, num_classes: int) -> tuple[int, ...]:
    """Shape of the decoded network output, ``(m, S, S, B, 5 + C)`` with ``S = input_size / stride``."""
    if input_size % stride:
        raise ValueError(f"input size {input_size} is not a multiple of the network stride {stride}")
    s = input_size // stride
    return (batch, s, s, num_anchors, 5 + num_classes)
