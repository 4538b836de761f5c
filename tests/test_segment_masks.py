"""Mask-folder import (data=masks): round trip, splits, large images, and one test per bad-input case."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.data.images import DataError
from cnnlab.segment.data import MaskDataset, read_classes
from cnnlab.segment.masks import MaskImport, prepare_masks


def _scene(rng: np.random.Generator, h: int = 24, w: int = 32) -> tuple[np.ndarray, np.ndarray]:
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[2:10, 3:12] = 1
    mask[12:20, 15:30] = 2
    return img, mask


def make_folder(root: Path, n: int = 8, classes: list[str] | None = None, ext: str = ".png",
                binary: bool = False, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """An image/mask folder; returns name → (image, mask as written)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    made = {}
    for i in range(n):
        img, mask = _scene(rng)
        if binary:
            mask = np.where(mask > 0, 255, 0).astype(np.uint8)
        Image.fromarray(img).save(root / "images" / f"im{i}{ext}")
        Image.fromarray(mask).save(root / "masks" / f"im{i}.png")
        made[f"im{i}"] = (img, mask)
    if classes:
        (root / "classes.txt").write_text("\n".join(classes) + "\n")
    return made


def test_round_trip(tmp_path):
    made = make_folder(tmp_path / "src", n=10, classes=["sky", "car", "road"])
    meta = prepare_masks(MaskImport(str(tmp_path / "src"), val=0.2, test=0.2, seed=3), tmp_path / "out")
    assert meta["classes"] == ["car", "road"] and meta["background"] == "sky"
    assert read_classes(tmp_path / "out") == ["sky", "car", "road"]
    assert sum(meta["splits"].values()) == 10 and meta["splits"]["val"] == 2 and meta["splits"]["test"] == 2
    seen = set()
    for split in ("train", "val", "test"):
        ds = MaskDataset(tmp_path / "out", split)
        for i, name in enumerate(ds.ids):
            image, mask = ds.load(i)
            img, m = made[name]
            np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(), img)
            np.testing.assert_array_equal(mask.numpy(), m)
            seen.add(name)
        # boxes of the connected regions, for the detection readers
        rec = json.loads((tmp_path / "out" / split / "annotations.json").read_text())[0]
        assert sorted(o["box"] for o in rec["objects"]) == [[3.0, 2.0, 12.0, 10.0], [15.0, 12.0, 30.0, 20.0]]
    assert seen == set(made)


def test_seeded_split_is_reproducible_and_given_splits_are_kept(tmp_path):
    make_folder(tmp_path / "a", n=12)
    m1 = prepare_masks(MaskImport(str(tmp_path / "a"), seed=1), tmp_path / "o1")
    m2 = prepare_masks(MaskImport(str(tmp_path / "a"), seed=1), tmp_path / "o2")
    ids = lambda root: sorted(p.name for p in (root / "test" / "images").iterdir())  # noqa: E731
    assert ids(tmp_path / "o1") == ids(tmp_path / "o2") and m1["splits"] == m2["splits"]
    for split, n in (("train", 3), ("val", 1), ("test", 2)):
        make_folder(tmp_path / "b" / split, n=n, seed=n)
    meta = prepare_masks(MaskImport(str(tmp_path / "b")), tmp_path / "o3")
    assert meta["splits"] == {"train": 3, "val": 1, "test": 2} and meta["split_given"]


def test_binary_0_255_masks_are_two_classes(tmp_path):
    make_folder(tmp_path / "src", n=6, binary=True)
    meta = prepare_masks(MaskImport(str(tmp_path / "src")), tmp_path / "out")
    assert meta["classes"] == ["class1"]
    ds = MaskDataset(tmp_path / "out", "train")
    assert set(np.unique(ds.load(0)[1].numpy())) == {0, 1}


def test_large_images_are_resized_or_tiled(tmp_path):
    make_folder(tmp_path / "src", n=4)
    meta = prepare_masks(MaskImport(str(tmp_path / "src"), max_side=16, val=0.25, test=0.25), tmp_path / "r")
    _, mask = MaskDataset(tmp_path / "r", "train").load(0)
    assert tuple(mask.shape) == (12, 16) and meta["splits"]["train"] == 2
    meta = prepare_masks(MaskImport(str(tmp_path / "src"), max_side=16, large="tile", val=0.25, test=0.25),
                         tmp_path / "t")
    assert meta["splits"]["train"] == 2 * 4  # 24×32 in 16×16 tiles: 2 rows × 2 columns
    ds = MaskDataset(tmp_path / "t", "train")
    assert all(tuple(ds.load(i)[1].shape) == (16, 16) for i in range(len(ds)))


def test_tiles_and_resized_images_keep_image_and_mask_aligned(tmp_path):
    """Each tile holds exactly its window of the image and of the mask, the tiles cover the whole
    image, and a resized image's mask is its nearest-neighbour resize (a known pattern)."""
    made = make_folder(tmp_path / "src", n=4)
    prepare_masks(MaskImport(str(tmp_path / "src"), max_side=16, large="tile", val=0.25, test=0.25), tmp_path / "t")
    covered = {name: np.zeros(m.shape, bool) for name, (_, m) in made.items()}
    for split in ("train", "val", "test"):
        ds = MaskDataset(tmp_path / "t", split)
        for i, tile_id in enumerate(ds.ids):
            name, where = tile_id.split("__")
            top, left = (int(part[1:]) for part in where.split("_"))
            image, mask = ds.load(i)
            img, m = made[name]
            np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(), img[top:top + 16, left:left + 16])
            np.testing.assert_array_equal(mask.numpy(), m[top:top + 16, left:left + 16])
            covered[name][top:top + 16, left:left + 16] = True
    assert all(c.all() for c in covered.values())

    prepare_masks(MaskImport(str(tmp_path / "src"), max_side=16, val=0.25, test=0.25), tmp_path / "r")
    for split in ("train", "val", "test"):
        ds = MaskDataset(tmp_path / "r", split)
        for i, name in enumerate(ds.ids):
            image, mask = ds.load(i)
            _, m = made[name]
            assert tuple(image.shape[-2:]) == tuple(mask.shape) == (12, 16)
            expected = np.asarray(Image.fromarray(m).resize((16, 12), Image.NEAREST))
            np.testing.assert_array_equal(mask.numpy(), expected)


def test_rgb_mask_with_a_palette(tmp_path):
    make_folder(tmp_path / "src", n=4)
    palette = [[0, 0, 0], [255, 0, 0], [0, 0, 255]]
    for f in (tmp_path / "src" / "masks").iterdir():
        m = np.asarray(Image.open(f))
        Image.fromarray(np.asarray(palette, np.uint8)[m]).save(f)
    prepare_masks(MaskImport(str(tmp_path / "src"), palette=palette, val=0.25, test=0.25), tmp_path / "out")
    assert set(np.unique(MaskDataset(tmp_path / "out", "train").load(0)[1].numpy())) == {0, 1, 2}


# --- bad input: an error naming the file, and nothing written ------------------------------------


def _fails(tmp_path: Path, match: str, **kw) -> None:
    with pytest.raises(DataError, match=match):
        prepare_masks(MaskImport(str(tmp_path / "src"), **kw), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_missing_mask(tmp_path):
    make_folder(tmp_path / "src")
    (tmp_path / "src" / "masks" / "im3.png").unlink()
    _fails(tmp_path, r"im3\.png: no mask .*masks/im3\.png")


def test_mask_without_image(tmp_path):
    make_folder(tmp_path / "src")
    (tmp_path / "src" / "images" / "im5.png").unlink()
    _fails(tmp_path, r"masks/im5\.png: mask without an image")


def test_size_mismatch(tmp_path):
    make_folder(tmp_path / "src")
    Image.fromarray(np.zeros((24, 30), np.uint8)).save(tmp_path / "src" / "masks" / "im2.png")
    _fails(tmp_path, r"masks/im2\.png: mask is 30x24, its image im2\.png is 32x24")


def test_value_outside_the_class_list(tmp_path):
    make_folder(tmp_path / "src", classes=["bg", "car", "road"])
    m = np.zeros((24, 32), np.uint8)
    m[5, 7] = 3
    Image.fromarray(m).save(tmp_path / "src" / "masks" / "im4.png")
    _fails(tmp_path, r"masks/im4\.png: value 3 at \(x=7, y=5\) is outside the 3 classes of .*classes\.txt")


def test_rgb_mask_without_palette(tmp_path):
    make_folder(tmp_path / "src")
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(tmp_path / "src" / "masks" / "im1.png")
    _fails(tmp_path, r"masks/im1\.png: RGB mask without a palette mapping")


def test_colour_outside_the_palette(tmp_path):
    make_folder(tmp_path / "src")
    Image.fromarray(np.full((24, 32, 3), 7, np.uint8)).save(tmp_path / "src" / "masks" / "im1.png")
    _fails(tmp_path, r"masks/im1\.png: colour \(7, 7, 7\) .* not in data\.palette",
           palette=[[0, 0, 0], [1, 1, 1], [2, 2, 2]])


def test_unreadable_mask(tmp_path):
    make_folder(tmp_path / "src")
    (tmp_path / "src" / "masks" / "im6.png").write_bytes(b"not a png")
    _fails(tmp_path, r"masks/im6\.png: cannot read mask")


def test_unreadable_image(tmp_path):
    make_folder(tmp_path / "src")
    (tmp_path / "src" / "images" / "im0.png").write_bytes(b"\x89PNG broken")
    _fails(tmp_path, r"images/im0\.png: cannot read image")


def test_incomplete_split_folders(tmp_path):
    make_folder(tmp_path / "src" / "train")
    make_folder(tmp_path / "src" / "val")
    _fails(tmp_path, r"src: has train/val but not test")


def test_missing_root(tmp_path):
    _fails(tmp_path, r"data root not found: .*src")
