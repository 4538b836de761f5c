"""The scenes data set: exact boxes, masks and landmarks, redrawn from the generator's parameters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.data.splits import identity_split
from cnnlab.detect import scenes
from cnnlab.detect.data import DetectionDataset, read_meta, read_split

ORL = "data/raw/orl_faces"
FACE_SPLIT = {"val_ids": 4, "test_ids": 4, "seed": 0}
TINY = scenes.SceneConfig(counts=(("train", 12), ("val", 3), ("test", 4)))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scenes") / "scenes"
    scenes.generate(out, ORL, FACE_SPLIT, TINY, seed=3)
    return out


def _redraw(alpha: np.ndarray, affine: list, shape: tuple[int, int]) -> np.ndarray:
    """The object's pixels by scikit-image's own nearest-neighbour warp (not the generator's code)."""
    from skimage.transform import AffineTransform, warp

    tf = AffineTransform(matrix=np.vstack([np.asarray(affine), [0, 0, 1]]))
    return warp(alpha.astype(float), tf.inverse, output_shape=shape, order=0, cval=0.0, preserve_range=True) > 0.5


def test_boxes_masks_landmarks_redraw_from_parameters(tiny):
    from cnnlab.face.detection.align import face_landmarks
    from cnnlab.face.detection.detectors import largest_face

    n_objects = n_faces = 0
    for split in ("train", "val", "test"):
        for rec in read_split(tiny, split):
            shape = (rec["height"], rec["width"])
            mask = np.asarray(Image.open(tiny / split / "masks" / f"{rec['id']}.png"))
            expect = np.zeros(shape, np.uint8)
            for obj, p in zip(rec["objects"], rec["scene"]["objects"]):
                _, alpha, marks = scenes.sprite(p["kind"], p["index"], ORL, p["colour"])
                full = _redraw(alpha, p["affine"], shape)
                ys, xs = np.nonzero(full)
                assert obj["box"] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
                assert obj["class"] == p["kind"] and scenes.CLASSES[obj["class_id"]] == p["kind"]
                expect[full] = 1 + obj["class_id"]  # later objects are pasted over earlier ones
                if p["kind"] == "face":
                    photo = np.asarray(Image.open(sorted(Path(ORL).glob("s*/*.pgm"), key=lambda q: (
                        int(q.parent.name[1:]), int(q.stem)))[p["index"]]))
                    ref = face_landmarks(photo, largest_face(photo, "hog"))
                    np.testing.assert_allclose(marks, ref)
                    a = np.asarray(p["affine"])
                    np.testing.assert_allclose(obj["landmarks"], ref @ a[:, :2].T + a[:, 2], atol=1e-4)
                    n_faces += 1
                else:
                    assert obj["landmarks"] is None
                n_objects += 1
            np.testing.assert_array_equal(mask, expect)
    assert n_objects > 30 and n_faces > 0


def test_shapes_match_their_geometry(tiny):
    """A shape's pixels are the analytic shape mapped back through the affine (to the pixel grid)."""
    checked = 0
    for rec in read_split(tiny, "train"):
        for obj, p in zip(rec["objects"], rec["scene"]["objects"]):
            if p["kind"] not in ("circle", "square"):
                continue
            full = _redraw(scenes.sprite(p["kind"], 0, ORL)[1], p["affine"], (rec["height"], rec["width"]))
            a = np.vstack([np.asarray(p["affine"]), [0, 0, 1]])
            # the continuous shape's corners / extreme points bound the pixel box to within a pixel
            n = scenes.SHAPE_SIZE
            if p["kind"] == "square":
                corners = np.array([[0, 0], [n - 1, 0], [0, n - 1], [n - 1, n - 1]], float)
                pts = corners @ a[:2, :2].T + a[:2, 2]
                x1, y1, x2, y2 = obj["box"]
                assert abs(pts[:, 0].min() - x1) <= 1.5 and abs(pts[:, 0].max() + 1 - x2) <= 1.5
                assert abs(pts[:, 1].min() - y1) <= 1.5 and abs(pts[:, 1].max() + 1 - y2) <= 1.5
            area = full.sum()
            sprite_area = scenes.sprite(p["kind"], 0, ORL)[1].sum() * abs(np.linalg.det(a[:2, :2]))
            assert area == pytest.approx(sprite_area, rel=0.15)
            checked += 1
    assert checked > 0


def test_deterministic_from_the_seed(tiny, tmp_path):
    again = tmp_path / "again"
    scenes.generate(again, ORL, FACE_SPLIT, TINY, seed=3)
    other = tmp_path / "other"
    scenes.generate(other, ORL, FACE_SPLIT, TINY, seed=4)
    for split in ("train", "test"):
        assert read_split(again, split) == read_split(tiny, split)
        assert (again / split / "images" / "00000.png").read_bytes() == (tiny / split / "images" / "00000.png").read_bytes()
        assert read_split(other, split) != read_split(tiny, split)


def test_test_scenes_only_show_held_out_people(tiny):
    people = [f"s{i}" for i in range(1, 21)]
    roles = dict(zip(people, identity_split(people, 4, 4, 0)))
    meta = read_meta(tiny)
    for split in ("train", "val", "test"):
        assert meta["face_people"][split] and all(roles[p] == split for p in meta["face_people"][split])
    faces = scenes._orl(ORL)
    for rec in read_split(tiny, "test"):
        for p in rec["scene"]["objects"]:
            if p["kind"] == "face":
                assert roles[faces[p["index"]][0]] == "test"


def test_scenes_are_crowded(tiny):
    """Several objects per image, some overlapping, some sharing a cell of a 4×4 grid."""
    recs = read_split(tiny, "train")
    assert np.mean([len(r["objects"]) for r in recs]) >= 2.5
    overlap = shared = 0
    for r in recs:
        boxes = [o["box"] for o in r["objects"]]
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                overlap += min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])
                ca = ((a[0] + a[2]) // 64, (a[1] + a[3]) // 64)
                cb = ((b[0] + b[2]) // 64, (b[1] + b[3]) // 64)
                shared += ca == cb
    assert overlap > 0 and shared > 0
    sides = [max(o["box"][2] - o["box"][0], o["box"][3] - o["box"][1]) for r in recs for o in r["objects"]]
    assert max(sides) > 2 * min(sides)


def test_dataset_yields_the_contract(tiny):
    import torch
    from torchvision import tv_tensors

    ds = DetectionDataset(tiny, "val")
    image, target = ds[0]
    rec = read_split(tiny, "val")[0]
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.uint8 and image.shape == (3, 128, 128)
    assert isinstance(target["boxes"], tv_tensors.BoundingBoxes) and target["boxes"].format.name == "XYXY"
    assert target["boxes"].tolist() == [o["box"] for o in rec["objects"]]
    assert target["labels"].dtype == torch.int64 and target["landmarks"].shape == (len(rec["objects"]), 5, 2)
    assert isinstance(target["mask"], tv_tensors.Mask) and target["mask"].shape == (128, 128)
    assert json.loads((tiny / "dataset.json").read_text())["splits"] == {"train": 12, "val": 3, "test": 4}
    assert (tiny / "preview.png").is_file()
