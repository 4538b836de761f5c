"""``cnnlab face`` on photographs: enroll detects and aligns, probes are prepared as the gallery was,
no face is "not recognised", and of several faces the largest one counts.

The encoder is dlib's face ResNet imported from ``face_recognition_models`` (``encoder=dlib_resnet``
without a pipeline run), the images are embedded ORL faces; dlib-bin is part of ``make test``'s
environment.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("dlib")

from cnnlab.cli import main  # noqa: E402
from cnnlab.face.models.embedder import pretrained_dlib_checkpoint  # noqa: E402
from cnnlab.face.gallery.encodings import load_encodings  # noqa: E402
from cnnlab.face.detection.preprocess import DEFAULT_RECIPE  # noqa: E402
from conftest import BIN, REPO, run, run_env  # noqa: E402

ORL = REPO / "data" / "raw" / "orl_faces"
PEOPLE = ("s1", "s2", "s3")
TAU = 0.17          # about what the calibrate stage picks for dlib at FAR 1 % (validation people)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    """dlib's encoder as a checkpoint, and a gallery of three people, three photos each."""
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("face_photos")
    gallery = tmp / "gallery"
    for person in PEOPLE:
        (gallery / person).mkdir(parents=True)
        for shot in (1, 2, 3):
            shutil.copy(ORL / person / f"{shot}.pgm", gallery / person / f"{shot}.pgm")
    return {"tmp": tmp, "gallery": gallery, "ckpt": pretrained_dlib_checkpoint(tmp / "dlib.ckpt")}


@pytest.fixture(scope="module")
def enrolled(setup) -> Path:
    """Enrolled through the real console script, with the repository's face.align."""
    out = setup["tmp"] / "family.npz"
    res = run([str(BIN / "cnnlab"), "face", "enroll", str(setup["gallery"]), "--encoder", str(setup["ckpt"]),
               "--out", str(out)], REPO, run_env(setup["tmp"]))
    assert "enrolled 9 images of 3 people" in res.stdout and "faces aligned: hog detector" in res.stdout
    return out


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["face", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_enroll_aligns_and_records_how(enrolled):
    import yaml

    enc = load_encodings(enrolled)
    align = yaml.safe_load((REPO / "conf/face/default.yaml").read_text())["face"]["align"]
    assert enc.preprocess == {k: align[k] for k in DEFAULT_RECIPE} and enc.no_face == []
    assert enc.embeddings.shape == (9, 128)


def test_identify_a_new_photo_of_an_enrolled_person(setup, enrolled, capsys, tmp_path):
    probe = tmp_path / "s2_new.png"                   # another shot, RGB, with a wide border: not a face crop
    face = Image.open(ORL / "s2" / "7.pgm").convert("RGB")
    canvas = Image.new("RGB", (3 * face.width, 2 * face.height), (90, 110, 90))
    canvas.paste(face, (face.width, face.height // 2))
    canvas.save(probe)
    code, out, _ = _cli(capsys, "identify", str(probe), "-k", "3", "--gallery", str(enrolled), "--tau", str(TAU))
    assert code == 0 and out.strip().endswith("→ s2"), out
    code, out, _ = _cli(capsys, "verify", str(ORL / "s1/8.pgm"), str(ORL / "s1/9.pgm"), "--gallery", str(enrolled),
                        "--tau", str(TAU))
    assert code == 0 and out.strip().endswith("same person"), out
    code, out, _ = _cli(capsys, "verify", str(ORL / "s1/8.pgm"), str(ORL / "s3/9.pgm"), "--gallery", str(enrolled),
                        "--tau", str(TAU))
    assert code == 0 and out.strip().endswith("different people"), out


def test_no_face_is_not_recognised_and_cannot_be_verified(enrolled, capsys, tmp_path):
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((120, 160), 128, np.uint8)).save(blank)
    code, out, _ = _cli(capsys, "identify", str(blank), "--gallery", str(enrolled), "--tau", str(TAU))
    assert code == 0 and f"no face found in {blank}" in out and out.strip().endswith("→ not recognised")
    code, _, err = _cli(capsys, "verify", str(blank), str(ORL / "s1/8.pgm"), "--gallery", str(enrolled),
                        "--tau", str(TAU))
    assert code == 1 and "no face found in" in err and "wall.png" in err


def test_of_several_faces_the_largest_is_identified(enrolled, capsys, tmp_path):
    small = Image.open(ORL / "s1" / "8.pgm")
    large = Image.open(ORL / "s3" / "8.pgm").resize((small.width * 2, small.height * 2), Image.BICUBIC)
    group = Image.new("L", (small.width + large.width + 60, large.height + 40), 100)
    group.paste(small, (20, 20 + large.height - small.height))
    group.paste(large, (small.width + 40, 20))
    path = tmp_path / "group.png"
    group.save(path)
    code, out, _ = _cli(capsys, "detect", str(path), "--out", str(tmp_path / "boxes.png"))
    assert code == 0 and "2 faces" in out                 # both are found ...
    code, out, _ = _cli(capsys, "identify", str(path), "--gallery", str(enrolled), "--tau", str(TAU))
    assert code == 0 and out.strip().endswith("→ s3"), out  # ... and the largest is the one identified
    small.save(tmp_path / "s1.png")
    code, out, _ = _cli(capsys, "identify", str(tmp_path / "s1.png"), "--gallery", str(enrolled), "--tau", str(TAU))
    assert out.strip().endswith("→ s1"), out              # the smaller face alone is s1: the choice mattered


def test_detect_never_writes_into_the_gallery_and_enroll_skips_its_drawings(setup, capsys, tmp_path, monkeypatch):
    """detect, then enroll the same folder: the drawing is neither beside the photo by default nor
    enrolled when a user writes it there; it shows the box and the 5 landmarks."""
    gallery = tmp_path / "gallery"
    shutil.copytree(setup["gallery"], gallery)
    photo = gallery / "s2" / "1.pgm"
    monkeypatch.chdir(tmp_path)
    code, out, _ = _cli(capsys, "detect", str(photo))
    default = Path("reports/faces/detect/1.faces.png")
    assert code == 0 and out.strip().endswith(f"→ {default} (boxes and the 5 landmarks drawn)"), out
    assert default.is_file() and sorted(p.name for p in photo.parent.iterdir()) == ["1.pgm", "2.pgm", "3.pgm"]
    landmarks = out.split("landmarks ")[1].splitlines()[0].split()
    assert len(landmarks) == 5
    with Image.open(default) as img:                                  # the red landmark dots are drawn
        rgb = np.asarray(img.convert("RGB")).astype(int)
    assert ((rgb[..., 0] > 200) & (rgb[..., 1] < 80) & (rgb[..., 2] < 80)).sum() >= 5 * 9
    monkeypatch.chdir(photo.parent)                                   # from inside the person's folder
    code, out, _ = _cli(capsys, "detect", str(photo.name))
    assert code == 0 and sorted(p.name for p in photo.parent.iterdir()) == ["1.pgm", "2.pgm", "3.pgm"]
    assert "cnnlab-detect" in out.strip().splitlines()[-1]
    monkeypatch.chdir(tmp_path)
    code, _, _ = _cli(capsys, "detect", str(photo), "--out", str(photo.with_name("1.faces.png")))
    code2, _, _ = _cli(capsys, "detect", str(photo), "--out", str(photo.with_name("boxes.jpg")))
    assert code == code2 == 0
    code, out, err = _cli(capsys, "enroll", str(gallery), "--encoder", str(setup["ckpt"]),
                          "--out", str(tmp_path / "g.npz"))
    assert code == 0, err
    assert "enrolled 9 images of 3 people" in out
    assert not any("faces" in p or "boxes" in p for p in load_encodings(tmp_path / "g.npz").paths)
