"""Pascal VOC import: round trip, given and seeded splits, classes.txt, one test per bad annotation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.data.images import DataError
from cnnlab.detect.data import read_meta, read_split
from cnnlab.detect.voc import import_voc, write_voc_xml

BOXES = {
    "a": [{"class": "dog", "box": [3, 4, 20, 30]}, {"class": "cat", "box": [10.5, 2, 39, 17.25], "difficult": True}],
    "b": [{"class": "cat", "box": [0, 0, 40, 32]}],
    "c": [{"class": "bird", "box": [5, 6, 7, 8]}],
    "d": [{"class": "dog", "box": [1, 1, 2, 2]}, {"class": "dog", "box": [30, 20, 40, 32]}],
}


def make_voc(root: Path, boxes=BOXES, layout=("JPEGImages", "Annotations"), size=(40, 32)) -> Path:
    rng = np.random.default_rng(0)
    for stem, objs in boxes.items():
        (root / layout[0]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(root / layout[0] / f"{stem}.png")
        write_voc_xml(root / layout[1] / f"{stem}.xml", f"{stem}.png", size[0], size[1], objs)
    return root


def _all(out: Path) -> dict[str, list]:
    return {r["id"]: r["objects"] for s in ("train", "val", "test") for r in read_split(out, s)}


@pytest.mark.parametrize("layout", [("JPEGImages", "Annotations"), ("images", "annotations")])
def test_round_trip_same_boxes(tmp_path, layout):
    make_voc(tmp_path / "voc", layout=layout)
    meta = import_voc(tmp_path / "voc", tmp_path / "out", name="mine", val=0.25, test=0.25, seed=1)
    assert meta["classes"] == ["bird", "cat", "dog"] and sum(meta["splits"].values()) == 4
    got = _all(tmp_path / "out")
    for stem, objs in BOXES.items():
        assert [o["box"] for o in got[stem]] == [[float(v) for v in o["box"]] for o in objs]
        assert [o["class"] for o in got[stem]] == [o["class"] for o in objs]
        assert [o["difficult"] for o in got[stem]] == [bool(o.get("difficult")) for o in objs]
        assert [meta["classes"][o["class_id"]] for o in got[stem]] == [o["class"] for o in objs]


def test_scenes_export_round_trip(tmp_path):
    """Scenes written as VOC XML and imported back keep every box."""
    from cnnlab.detect import scenes

    src = tmp_path / "scenes"
    scenes.generate(src, "data/raw/orl_faces", {"val_ids": 4, "test_ids": 4, "seed": 0},
                    scenes.SceneConfig(counts=(("train", 3), ("val", 1), ("test", 1))), seed=0)
    want = {}
    for split in ("train", "val", "test"):
        for r in read_split(src, split):
            stem = f"{split}{r['id']}"
            (tmp_path / "voc" / split / "images").mkdir(parents=True, exist_ok=True)
            Image.open(src / split / r["file"]).save(tmp_path / "voc" / split / "images" / f"{stem}.jpg")
            write_voc_xml(tmp_path / "voc" / split / "annotations" / f"{stem}.xml", f"{stem}.jpg",
                          r["width"], r["height"], r["objects"])
            want[stem] = (split, r["objects"])
    (tmp_path / "voc" / "classes.txt").write_text("\n".join(scenes.CLASSES) + "\n")
    meta = import_voc(tmp_path / "voc", tmp_path / "out", name="back")
    assert meta["classes"] == list(scenes.CLASSES) and meta["split"] == "given"
    for split in ("train", "val", "test"):
        for r in read_split(tmp_path / "out", split):
            s, objs = want[r["id"]]
            assert s == split
            assert [(o["class_id"], o["box"]) for o in r["objects"]] == [(o["class_id"], o["box"]) for o in objs]


def test_seeded_split_is_deterministic(tmp_path):
    make_voc(tmp_path / "voc")
    a = import_voc(tmp_path / "voc", tmp_path / "a", name="a", val=0.25, test=0.25, seed=5)
    b = import_voc(tmp_path / "voc", tmp_path / "b", name="b", val=0.25, test=0.25, seed=5)
    assert a["splits"] == b["splits"] == {"train": 2, "val": 1, "test": 1}
    assert {s: [r["id"] for r in read_split(tmp_path / "a", s)] for s in ("train", "val", "test")} == \
           {s: [r["id"] for r in read_split(tmp_path / "b", s)] for s in ("train", "val", "test")}


def test_classes_txt_orders_the_classes(tmp_path):
    make_voc(tmp_path / "voc")
    (tmp_path / "voc" / "classes.txt").write_text("dog\ncat\nbird\nfish\n")
    meta = import_voc(tmp_path / "voc", tmp_path / "out", name="x", val=0.25, test=0.25)
    assert meta["classes"] == ["dog", "cat", "bird", "fish"]
    assert read_meta(tmp_path / "out")["classes"] == ["dog", "cat", "bird", "fish"]


def _bad(tmp_path, match, edit):
    root = make_voc(tmp_path / "voc")
    edit(root)
    with pytest.raises(DataError, match=match):
        import_voc(root, tmp_path / "out", name="bad", val=0.25, test=0.25)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def _rewrite(root, stem, objs, size=(40, 32), filename=None):
    write_voc_xml(root / "Annotations" / f"{stem}.xml", filename or f"{stem}.png", size[0], size[1], objs)


def test_bad_box_outside_image(tmp_path):
    _bad(tmp_path, r"c\.xml: object 0 \('bird'\): box .* outside the 40x32 image",
         lambda r: _rewrite(r, "c", [{"class": "bird", "box": [5, 6, 41, 8]}]))


def test_bad_box_negative(tmp_path):
    _bad(tmp_path, r"c\.xml: object 1 \('cat'\): box .* outside",
         lambda r: _rewrite(r, "c", [{"class": "bird", "box": [5, 6, 7, 8]}, {"class": "cat", "box": [-1, 0, 5, 5]}]))


def test_bad_box_zero_area(tmp_path):
    _bad(tmp_path, r"c\.xml: object 0 \('bird'\): box of zero area",
         lambda r: _rewrite(r, "c", [{"class": "bird", "box": [5, 6, 9, 6]}]))


def test_bad_box_xmin_after_xmax(tmp_path):
    _bad(tmp_path, r"c\.xml: object 0 \('bird'\): xmin >= xmax",
         lambda r: _rewrite(r, "c", [{"class": "bird", "box": [9, 6, 5, 8]}]))


def test_bad_unknown_class_with_a_class_list(tmp_path):
    def edit(r):
        (r / "classes.txt").write_text("dog\ncat\n")
    _bad(tmp_path, r"c\.xml: object 0 \('bird'\): unknown class", edit)


def test_bad_missing_image(tmp_path):
    _bad(tmp_path, r"b\.xml: its image 'b\.png' is missing", lambda r: (r / "JPEGImages" / "b.png").unlink())


def test_bad_size_differs_from_the_image(tmp_path):
    _bad(tmp_path, r"d\.xml: says the image is 50x32, but d\.png is 40x32",
         lambda r: _rewrite(r, "d", BOXES["d"], size=(50, 32)))


def test_bad_unparsable_xml(tmp_path):
    _bad(tmp_path, r"a\.xml: cannot parse XML", lambda r: (r / "Annotations" / "a.xml").write_text("<annotation><obj"))


def test_bad_input_through_the_stage_exits_with_one_line(tmp_path):
    root = make_voc(tmp_path / "voc")
    _rewrite(root, "c", [{"class": "bird", "box": [9, 6, 5, 8]}])
    out = tmp_path / "prepared"
    proc = subprocess.run([sys.executable, "-m", "cnnlab.stages.prepare", "data=voc", f"data.root={root}",
                           f"paths.prepared={out}", f"mlflow.tracking_uri=sqlite:///{tmp_path}/m.db"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ") and "c.xml: object 0 ('bird')" in proc.stderr
    assert not out.exists()
