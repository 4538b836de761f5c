"""YOLO, course-faithful: grid + anchor targets, k-means anchors, network, loss, prediction.

The vector of each (cell, anchor) slot is the course's ``(p_c, b_x, b_y, b_h, b_w, c_1..c_C)``
(:mod:`.encoding`); the target tensor is S×S×B×(5+C).
"""
