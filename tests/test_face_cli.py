"""``cnnlab face enroll | verify | identify``: the round trip through the real console script, and bad input.

The encoder is an untrained LeNet-5 embedder: the people are fixed random patterns, so even
random features tell them apart, and what is checked here is the plumbing (files, thresholds,
decisions, messages), not accuracy (the stage tests measure that).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.cli import main
from cnnlab.face.training.module import FaceEncoderModule, checkpoint_hash
from cnnlab.face.gallery.encodings import encode_with_checkpoint, load_encodings, save_encodings
from cnnlab.face.gallery.verify import calibrate, save_threshold, threshold_path
from conftest import BIN, REPO, run, run_env

CNNLAB = str(BIN / "cnnlab")


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _face(person: int, shot: int) -> np.ndarray:
    """A person is a fixed random pattern; each shot adds a little noise."""
    base = np.random.default_rng(person).integers(0, 256, (40, 36))
    noise = np.random.default_rng(1000 * person + shot).normal(0, 6, base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _people(root: Path, people: dict[str, int], shots: int = 3) -> Path:
    """Grey PGM for every shot but the last, which is an RGB PNG: galleries mix modes."""
    for name, pid in people.items():
        (root / name).mkdir(parents=True)
        for s in range(shots):
            img = Image.fromarray(_face(pid, s), "L")
            (img.convert("RGB").save(root / name / f"{s}.png") if s == shots - 1
             else img.save(root / name / f"{s}.pgm"))
    return root


def _encoder(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    module = FaceEncoderModule(arch="lenet5", in_chans=1, input_size=[32, 32],
                               normalization={"mean": [0.5], "std": [0.25]}, embedding_dim=16,
                               identities=["train1", "train2"])
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    """An encoder, a gallery folder (ada, bob, cy) and a τ calibrated on four other people."""
    tmp = tmp_path_factory.mktemp("face_cli")
    torch.set_num_threads(1)
    ckpt = _encoder(tmp / "encoder.ckpt")
    val_npz = save_encodings(tmp / "val.npz", encode_with_checkpoint(
        ckpt, _people(tmp / "val", {f"v{i}": 10 + i for i in range(4)}, shots=5)))
    save_threshold(val_npz, calibrate(load_encodings(val_npz), target_far=0.05))
    return {"tmp": tmp, "ckpt": ckpt, "threshold": threshold_path(val_npz),
            "gallery": _people(tmp / "gallery", {"ada": 1, "bob": 2, "cy": 3})}


def test_enroll_verify_identify_round_trip_through_the_console_script(setup):
    tmp, env = setup["tmp"], run_env(setup["tmp"])
    out = tmp / "enc" / "family.npz"
    res = run([CNNLAB, "face", "enroll", "--no-align", str(setup["gallery"]), "--encoder", str(setup["ckpt"]),
               "--out", str(out),
               "--threshold", str(setup["threshold"])], tmp, env)
    assert "enrolled 9 images of 3 people" in res.stdout
    enc = load_encodings(out)
    assert sorted(set(enc.labels)) == ["ada", "bob", "cy"] and enc.encoder_hash == checkpoint_hash(setup["ckpt"])
    tau = json.loads(threshold_path(out).read_text())["tau"]
    assert tau == json.loads(setup["threshold"].read_text())["tau"]

    g = setup["gallery"]
    res = run([CNNLAB, "face", "verify", str(g / "bob/0.pgm"), str(g / "bob/2.png"), "--gallery", str(out)], tmp, env)
    distance = float(res.stdout.split("distance ")[1].split(",")[0])
    assert f"threshold {tau:.4f}" in res.stdout
    assert res.stdout.strip().endswith("same person" if distance <= tau else "different people")

    probe = tmp / "bob_new.jpg"                          # a new shot, RGB, another size
    Image.fromarray(_face(2, 7), "L").convert("RGB").resize((90, 100)).save(probe, quality=95)
    res = run([CNNLAB, "face", "identify", str(probe), "-k", "3", "--gallery", str(out), "--tau", "4"], tmp, env)
    ranked = [line.split() for line in res.stdout.splitlines() if line.strip()[:2] in ("1.", "2.", "3.")]
    assert [r[1] for r in ranked][0] == "bob" and sorted(r[1] for r in ranked) == ["ada", "bob", "cy"]
    assert [float(r[2]) for r in ranked] == sorted(float(r[2]) for r in ranked)
    assert res.stdout.strip().endswith("→ bob")


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["face", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def enrolled(setup) -> Path:
    out = setup["tmp"] / "enc" / "inproc.npz"
    assert main(["face", "enroll", "--no-align", str(setup["gallery"]), "--encoder", str(setup["ckpt"]),
                 "--out", str(out),
                 "--threshold", str(setup["threshold"])]) == 0
    return out


def test_identify_says_not_recognised_beyond_tau(setup, enrolled, tmp_path, capsys):
    probe = tmp_path / "ada_new.pgm"
    Image.fromarray(_face(1, 8), "L").save(probe)
    code, out, _ = _cli(capsys, "identify", str(probe), "--gallery", str(enrolled), "--tau", "1e-12")
    lines = out.strip().splitlines()
    assert code == 0 and lines[-1] == "→ not recognised" and "(beyond τ)" in lines[1]
    code, out, _ = _cli(capsys, "verify", str(setup["gallery"] / "ada/0.pgm"), str(setup["gallery"] / "cy/0.pgm"),
                        "--gallery", str(enrolled), "--tau", "1e-12")
    assert code == 0 and out.strip().endswith("different people")


def test_unreadable_gallery_image_is_named(setup, tmp_path, capsys):
    gallery = _people(tmp_path / "g", {"ann": 4, "dan": 5})
    (gallery / "dan" / "3.jpg").write_bytes(b"JFIF? no")
    code, _, err = _cli(capsys, "enroll", "--no-align", str(gallery), "--encoder", str(setup["ckpt"]), "--out",
                        str(tmp_path / "o.npz"))
    assert code == 1 and "dan/3.jpg: cannot read image" in err and not (tmp_path / "o.npz").exists()


def test_person_folder_without_images_is_named(setup, tmp_path, capsys):
    gallery = _people(tmp_path / "g", {"ann": 4})
    (gallery / "nobody").mkdir()
    code, _, err = _cli(capsys, "enroll", "--no-align", str(gallery), "--encoder", str(setup["ckpt"]), "--out",
                        str(tmp_path / "o.npz"))
    assert code == 1 and "nobody: empty class folder" in err


def test_missing_inputs_say_what_makes_them(setup, enrolled, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CNNLAB_CONF", str(REPO / "conf"))
    code, _, err = _cli(capsys, "identify", str(setup["gallery"] / "ada/0.pgm"))
    assert code == 1 and "encodings not found: data/encodings/dlib_resnet/orl_faces_ids-test.npz" in err
    assert "encode_faces stage" in err
    code, _, err = _cli(capsys, "identify", str(tmp_path / "nope.png"), "--gallery", str(enrolled))
    assert code == 1 and "image not found" in err and "nope.png" in err
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    code, _, err = _cli(capsys, "verify", str(broken), str(setup["gallery"] / "ada/0.pgm"), "--gallery", str(enrolled))
    assert code == 1 and "broken.png: cannot read image" in err
    code, _, err = _cli(capsys, "enroll", "--no-align", str(setup["gallery"]), "--out", str(tmp_path / "x.npz"))
    assert code == 1 and "models/faces/dlib_resnet/best.ckpt" in err and "import_dlib stage" in err
    assert not (tmp_path / "x.npz").exists()


def test_thresholds_and_encoders_must_match(setup, enrolled, tmp_path, capsys):
    other = _encoder(tmp_path / "other.ckpt", seed=1)
    code, _, err = _cli(capsys, "enroll", "--no-align", str(setup["gallery"]), "--encoder", str(other), "--out",
                        str(tmp_path / "o.npz"), "--threshold", str(setup["threshold"]))
    assert code == 1 and "calibrate again" in err
    code, out, _ = _cli(capsys, "enroll", "--no-align", str(setup["gallery"]), "--encoder", str(other), "--out",
                        str(tmp_path / "o.npz"))
    assert code == 0 and "no calibrated threshold" in out and not threshold_path(tmp_path / "o.npz").exists()
    code, _, err = _cli(capsys, "identify", str(setup["gallery"] / "ada/0.pgm"), "--gallery", str(tmp_path / "o.npz"))
    assert code == 1 and "no threshold" in err and "--tau" in err
    code, _, err = _cli(capsys, "identify", str(setup["gallery"] / "ada/0.pgm"), "--gallery", str(enrolled),
                        "--encoder", str(other))
    assert code == 1 and "not the encoder that made the gallery" in err


def test_probes_are_prepared_exactly_like_validation_images():
    from cnnlab.data.datamodule import eval_transform
    from cnnlab.face.gallery.encodings import image_transform

    x = torch.randint(0, 256, (1, 47, 39), dtype=torch.uint8)
    norm = {"mean": [0.46], "std": [0.21]}
    expected = eval_transform((32, 28), norm["mean"], norm["std"])(x)
    torch.testing.assert_close(image_transform((32, 28), norm)(x), expected)


def test_verify_needs_no_gallery_given_encoder_and_tau(setup, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                         # no default gallery here
    g = setup["gallery"]
    code, out, _ = _cli(capsys, "verify", str(g / "cy/0.pgm"), str(g / "cy/0.pgm"), "--encoder", str(setup["ckpt"]),
                        "--tau", "0.5", "--no-align")
    assert code == 0 and out.startswith("distance 0.0000, threshold 0.5000") and out.strip().endswith("same person")
    # without --no-align the probes are detected and aligned first: these patterns hold no face
    code, _, err = _cli(capsys, "verify", str(g / "cy/0.pgm"), str(g / "cy/0.pgm"), "--encoder", str(setup["ckpt"]),
                        "--tau", "0.5")
    assert code == 1 and "no face found in" in err and "cy/0.pgm" in err


def test_enroll_with_a_non_default_encoder_then_identify_without_extra_flags(setup, tmp_path, capsys, monkeypatch):
    """`enroll --encoder` with another encoder than the default writes under that encoder's folder
    and takes that encoder's τ, so `identify` then needs no --tau (nor --encoder)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CNNLAB_CONF", str(REPO / "conf"))
    run_dir = tmp_path / "models" / "faces" / "course39-ids"      # where train_encoder puts course39
    run_dir.mkdir(parents=True)
    ckpt = _encoder(run_dir / "best.ckpt")
    home = tmp_path / "data" / "encodings" / "course39"          # where the face stages put course39's files
    val = save_encodings(home / "orl_faces_ids-val.npz", encode_with_checkpoint(
        ckpt, _people(tmp_path / "val", {f"v{i}": 10 + i for i in range(4)}, shots=5)))
    record = calibrate(load_encodings(val), target_far=0.05)
    save_threshold(val, record)
    code, out, err = _cli(capsys, "enroll", "--no-align", str(setup["gallery"]), "--encoder",
                          "models/faces/course39-ids/best.ckpt")
    assert code == 0, err
    npz = Path("data/encodings/course39/gallery.npz")
    assert f"into {npz}" in out and npz.is_file()
    assert "encoder course39 (not the default dlib_resnet): models/faces/course39-ids/best.ckpt" in out
    assert json.loads(threshold_path(npz).read_text())["tau"] == record["tau"]
    assert not Path("data/encodings/dlib_resnet").exists()
    probe = tmp_path / "cy_new.pgm"
    Image.fromarray(_face(3, 9), "L").save(probe)
    code, out, err = _cli(capsys, "identify", str(probe), "--gallery", str(npz))
    assert code == 0, err
    assert f"threshold {record['tau']:.4f}" in out and out.strip().splitlines()[1].split()[1] == "cy"


def test_enroll_skips_the_drawings_of_detect(setup, tmp_path, capsys):
    """A `cnnlab face detect` drawing moved into a gallery is not enrolled as a photo."""
    import shutil

    from cnnlab.face.detection.drawing import draw_boxes, is_drawing, save_drawing

    gallery = tmp_path / "g"
    shutil.copytree(setup["gallery"], gallery)
    drawing = gallery / "ada" / "boxes.png"                       # any name: the file's tag counts
    save_drawing(draw_boxes(np.asarray(Image.open(gallery / "ada" / "0.pgm")), []), drawing)
    assert is_drawing(drawing) and not is_drawing(gallery / "ada" / "2.png")
    code, out, err = _cli(capsys, "enroll", "--no-align", str(gallery), "--encoder", str(setup["ckpt"]), "--out",
                          str(tmp_path / "o.npz"))
    assert code == 0, err
    assert "enrolled 9 images of 3 people" in out and "ada/boxes.png" not in load_encodings(tmp_path / "o.npz").paths
