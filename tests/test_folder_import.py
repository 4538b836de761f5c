"""Image import never loses, clips or rotates data silently (issue 14, defect 5).

Each case builds its own folder with Pillow (and OpenCV for 16-bit colour) and prepares it with
the real preparer; expected pixels come from a direct formula, not from the code under test.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.data.images import DataError, read_image
from cnnlab.data.prepare import prepare_folder
from cnnlab.data.recorded import use_recorded_data

RNG = np.random.default_rng(0)


def _data(root: Path, name: str = "mine", channels: int = 3, **split) -> dict:
    return {"name": name, "source": "folder", "root": str(root), "channels": channels, "mirror": True,
            "image_size": None, "limit_per_class": None,
            "split": {"by": "images", "val": 0.2, "test": 0.2, "val_ids": 0, "test_ids": 0, "seed": 0, **split}}


def _noise(path: Path, h: int = 12, w: int = 10) -> np.ndarray:
    arr = RNG.integers(0, 255, (h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, quality=95) if path.suffix == ".jpg" else Image.fromarray(arr).save(path)
    return arr


def _fill(root: Path, label: str, n: int) -> None:
    for i in range(n):
        _noise(root / label / f"fill{i}.png")


def _written(out: Path) -> dict[str, str]:
    """``{manifest path: label}``, checked against the files on disk."""
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert sorted(r["path"] for r in rows) == on_disk  # the manifest matches the files, no duplicates
    return {r["path"]: r["label"] for r in rows}


def _by_source(out: Path) -> dict[str, np.ndarray]:
    """Prepared pixels keyed by ``<label>/<name>`` (the split folder dropped)."""
    return {p.split("/", 1)[1]: np.asarray(Image.open(out / p)) for p in _written(out)}


def test_colliding_names_give_one_file_each(tmp_path):
    root = tmp_path / "imgs"
    sources = {rel: _noise(root / rel) for rel in ("a/00.png", "a/00.jpg", "a/x/b.png", "a/x__b.png",
                                                   "a/y.jpg", "a/y.jpg.png", "a/Z.png", "b/z.png")}
    _fill(root, "a", 4)
    _fill(root, "b", 8)
    meta = prepare_folder(_data(root), tmp_path / "out")
    n_inputs = len(sources) + 12
    written = _by_source(tmp_path / "out")
    assert len(written) == n_inputs == sum(meta["counts"].values()) == meta["import"]["written"]
    # names keep the source path; a .png keeps its name, other formats add .png
    for rel, expected in [("a/00.png", "a/00.png"), ("a/00.jpg", "a/00.jpg.png"), ("a/x/b.png", "a/x/b.png"),
                          ("a/x__b.png", "a/x__b.png"), ("a/Z.png", "a/Z.png"), ("b/z.png", "b/z.png")]:
        decoded = np.asarray(Image.open(root / rel).convert("RGB"))  # the JPEG as Pillow decodes it
        np.testing.assert_array_equal(written[expected], decoded, err_msg=rel)
    # y.jpg and y.jpg.png both want y.jpg.png: the second in sorted order is renamed, and it is reported
    assert {k for k in written if k.startswith("a/y.jpg")} == {"a/y.jpg.png", "a/y.jpg~2.png"}
    assert [c["file"] for c in meta["import"]["changed"]] == ["a/y.jpg.png"]
    assert "renamed to y.jpg~2.png" in meta["import"]["changed"][0]["change"]


def test_16bit_grey_png_is_scaled_not_clipped(tmp_path, caplog):
    root = tmp_path / "imgs"
    ramp = (np.arange(16 * 16, dtype=np.uint32).reshape(16, 16) * 257).astype(np.uint16)  # 0 .. 65535
    (root / "deep").mkdir(parents=True)
    Image.fromarray(ramp).save(root / "deep" / "ramp.png")
    assert Image.open(root / "deep" / "ramp.png").mode == "I;16"
    _fill(root, "deep", 4)
    _fill(root, "flat", 5)
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        meta = prepare_folder(_data(root, channels=1), tmp_path / "out")
    got = _by_source(tmp_path / "out")["deep/ramp.png"]
    np.testing.assert_array_equal(got, np.rint(ramp / 257.0).astype(np.uint8))  # 65535 → 255, linearly
    assert (got == 255).mean() < 0.01
    assert {"file": "deep/ramp.png", "change": "16-bit scaled to 8 bits"} in meta["import"]["changed"]
    assert "deep/ramp.png: 16-bit scaled to 8 bits" in caplog.text


def test_16bit_colour_png_is_scaled(tmp_path):
    cv2 = pytest.importorskip("cv2")
    path = tmp_path / "rgb16.png"
    bgr = np.zeros((4, 4, 3), np.uint16)
    bgr[..., 0], bgr[..., 1], bgr[..., 2] = 65535, 32768, 4096  # OpenCV writes B, G, R
    cv2.imwrite(str(path), bgr)
    img, notes = read_image(path, "RGB")
    np.testing.assert_array_equal(np.asarray(img)[0, 0], [4096 >> 8, 32768 >> 8, 255])
    assert notes == ["16-bit scaled to 8 bits"]


def test_exif_orientation_is_applied(tmp_path, caplog):
    root = tmp_path / "imgs"
    raw = np.zeros((16, 24, 3), np.uint8)  # four flat quadrants survive JPEG compression
    raw[:8, :12], raw[:8, 12:], raw[8:, :12], raw[8:, 12:] = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display", as phones write it
    (root / "phone").mkdir(parents=True)
    Image.fromarray(raw).save(root / "phone" / "photo.jpg", exif=exif, quality=95)
    _fill(root, "phone", 4)
    _fill(root, "other", 5)
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        meta = prepare_folder(_data(root), tmp_path / "out")
    got = _by_source(tmp_path / "out")["phone/photo.jpg.png"].astype(int)
    expected = np.rot90(raw, k=-1).astype(int)  # clockwise
    assert got.shape == expected.shape == (24, 16, 3)
    for y, x in ((6, 4), (6, 12), (18, 4), (18, 12)):  # quadrant centres, away from JPEG's blurred edges
        assert np.abs(got[y, x] - expected[y, x]).max() < 30, (y, x, got[y, x], expected[y, x])
    change = "EXIF orientation 6 applied (rotated 90° clockwise)"
    assert {"file": "phone/photo.jpg", "change": change} in meta["import"]["changed"]
    assert f"phone/photo.jpg: {change}" in caplog.text


def test_stray_hidden_and_tiny_files_are_reported(tmp_path, caplog):
    root = tmp_path / "imgs"
    _fill(root, "a", 5)
    _fill(root, "b", 5)
    _noise(root / "stray.png")
    (root / "README.txt").write_text("my photos")
    (root / ".DS_Store").write_bytes(b"\0")
    (root / "a" / ".hidden.png").write_bytes(b"\0")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(root / "b" / "pixel.png")
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        meta = prepare_folder(_data(root), tmp_path / "out")
    imp = meta["import"]
    assert imp["skipped"] == [{"file": ".DS_Store", "reason": "hidden file"},
                              {"file": "README.txt", "reason": "not in a class folder"},
                              {"file": "a/.hidden.png", "reason": "hidden file"},
                              {"file": "stray.png", "reason": "image outside any class folder"}]
    assert imp["n_skipped"] == 4 and imp["tiny"] == [{"file": "b/pixel.png", "size": [1, 1]}]
    assert imp["written"] == imp["images_found"] == 11 == len(_written(tmp_path / "out"))
    for name in ("stray.png", "README.txt", ".DS_Store", "a/.hidden.png", "b/pixel.png"):
        assert name in caplog.text
    assert meta["image_size"] is None and "2 different sizes, from 1×1 to 10×12" in caplog.text
    assert json.loads((tmp_path / "out" / "dataset.json").read_text())["import"] == imp


def test_prepare_records_its_config_and_keeps_other_folders(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    for root in (first, second):
        _fill(root, "a", 5)
        _fill(root, "b", 5)
    out = tmp_path / "prepared" / "mine"
    meta = prepare_folder(_data(first), out)
    assert meta["data"]["root"] == str(first) and meta["data"]["name"] == "mine"
    before = (out / "dataset.json").read_bytes()
    with pytest.raises(DataError, match=r"prepared from .*first.*data\.name=NAME"):
        prepare_folder(_data(second), out)
    assert (out / "dataset.json").read_bytes() == before
    prepare_folder(_data(first), out)  # the same folder again replaces it
    with pytest.raises(DataError, match="data.root is not set"):
        prepare_folder({**_data(first), "root": None}, tmp_path / "other")


def test_later_stages_take_the_recorded_data_config(hydra_cfg, tmp_path):
    out = tmp_path / "mine"
    _fill(tmp_path / "imgs", "a", 5)
    _fill(tmp_path / "imgs", "b", 5)
    prepare_folder(_data(tmp_path / "imgs"), out)
    overrides = ["data.name=mine", f"paths.prepared={out}", "data.image_size=64"]
    cfg = hydra_cfg(*overrides)  # data=digits by default: its source, mirror and root are not this data set's
    assert cfg.data.source == "sklearn_digits" and not cfg.data.mirror
    assert use_recorded_data(cfg, overrides)
    assert (cfg.data.source, cfg.data.root, cfg.data.mirror, cfg.data.channels) == ("folder", str(tmp_path / "imgs"),
                                                                                   True, 3)
    assert cfg.data.image_size == 64  # a data.* override on the command line still wins
    plain = hydra_cfg(f"paths.prepared={out}")
    assert not use_recorded_data(plain, [f"paths.prepared={out}"]) and plain.data.source == "sklearn_digits"
