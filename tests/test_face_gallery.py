"""Encodings files and the gallery: encode → enroll → verify → identify, calibration, bad input."""

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data.images import DataError
from cnnlab.face.training.module import Embedder
from cnnlab.face.gallery.encodings import (Encodings, concat_encodings, embed_images, encode_folder, load_encodings,
                                   save_encodings)
from cnnlab.face.gallery.verify import NOT_RECOGNISED, Gallery, calibrate, load_threshold, save_threshold, threshold_path

SIZE, NORM = (32, 32), {"mean": [0.5], "std": [0.25]}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def embed_fn():
    torch.manual_seed(0)
    return Embedder("lenet5", embedding_dim=16, in_chans=1).eval()   # untrained is enough here


def _face(person: int, shot: int) -> np.ndarray:
    """A person is a fixed random pattern; each shot adds a little noise."""
    base = np.random.default_rng(person).integers(0, 256, (40, 36))
    noise = np.random.default_rng(100 * person + shot).normal(0, 6, base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _gallery(root, people=("ada", "bob", "cy"), shots=3):
    """Grey PGM for the first shots, RGB PNG for the last: the gallery mixes modes."""
    for p, name in enumerate(people):
        (root / name).mkdir(parents=True)
        for s in range(shots):
            img = Image.fromarray(_face(p, s), "L")
            if s == shots - 1:
                img.convert("RGB").save(root / name / f"{s}.png")
            else:
                img.save(root / name / f"{s}.pgm")
    return root


def _encode(embed_fn, root):
    paths, labels, emb, _ = encode_folder(embed_fn, root, "L", SIZE, NORM, batch_size=4)
    return Encodings(paths, labels, emb, "h" * 64, "lenet5-test")


def test_encode_enroll_verify_identify_round_trip(tmp_path, embed_fn):
    root = _gallery(tmp_path / "gallery")
    enc = _encode(embed_fn, root)
    assert enc.paths[:3] == ["ada/0.pgm", "ada/1.pgm", "ada/2.png"] and enc.labels.count("bob") == 3
    assert enc.embeddings.dtype == np.float32 and enc.embeddings.shape == (9, 16)
    np.testing.assert_allclose(np.linalg.norm(enc.embeddings, axis=1), 1.0, atol=1e-5)

    path = save_encodings(tmp_path / "enc" / "gallery.npz", enc)
    back = load_encodings(path)
    assert (back.paths, back.labels, back.encoder_hash, back.encoder_name) == (
        enc.paths, enc.labels, enc.encoder_hash, enc.encoder_name)
    np.testing.assert_array_equal(back.embeddings, enc.embeddings)

    gallery = Gallery(template="all")
    gallery.enroll(back)
    assert gallery.people == ["ada", "bob", "cy"]
    for emb, label in zip(back.embeddings, back.labels):
        found = gallery.identify(emb, k=2, tau=4.0)
        assert found.name == label and found.matches[0][1] < 1e-5
        assert len({n for n, _ in found.matches}) == 2
    e = dict(zip(back.paths, back.embeddings))
    same, diff = gallery.verify(e["ada/0.pgm"], e["ada/1.pgm"], tau=4.0), gallery.verify(e["ada/0.pgm"], e["bob/0.pgm"], 4.0)
    assert same.same and same.distance < diff.distance
    assert gallery.verify_claim(e["cy/1.pgm"], "cy", tau=1e-4).same
    assert not gallery.verify_claim(e["cy/1.pgm"], "ada", tau=same.distance / 2).same

    stranger = tmp_path / "stranger.png"
    Image.fromarray(_face(7, 0), "L").save(stranger)
    probe = embed_images(embed_fn, [stranger], "L", SIZE, NORM)
    lost = gallery.identify(probe[0], k=3, tau=1e-9)
    assert lost.name == NOT_RECOGNISED and not lost.recognised and len(lost.matches) == 3


def test_probe_of_another_size_and_mode_is_converted_and_resized(tmp_path, embed_fn):
    root = _gallery(tmp_path / "gallery")
    gallery = Gallery()
    gallery.enroll(_encode(embed_fn, root))
    probe = tmp_path / "bob_big.jpg"
    Image.open(root / "bob" / "1.pgm").convert("RGB").resize((72, 80)).save(probe, quality=95)
    emb = embed_images(embed_fn, [probe], "L", SIZE, NORM)
    assert emb.shape == (1, 16)
    found = gallery.identify(emb[0], k=3, tau=4.0)
    assert found.name == "bob" and found.matches[0][1] < found.matches[1][1] / 4


def test_mean_templates_are_renormalised_person_means(tmp_path, embed_fn):
    enc = _encode(embed_fn, _gallery(tmp_path / "gallery"))
    gallery = Gallery(template="mean", tau=4.0)
    gallery.enroll(enc)
    labels = np.array(enc.labels)
    means = np.stack([enc.embeddings[labels == p].mean(0) for p in ("ada", "bob", "cy")])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    probe = np.random.default_rng(0).normal(size=16).astype(np.float32)
    probe /= np.linalg.norm(probe)
    d = ((means - probe) ** 2).sum(1)
    found = gallery.identify(probe, k=3)
    assert [n for n, _ in found.matches] == [("ada", "bob", "cy")[i] for i in np.argsort(d)]
    np.testing.assert_allclose([x for _, x in found.matches], np.sort(d), atol=1e-5)


def test_unreadable_gallery_image_is_an_error_naming_it(tmp_path, embed_fn):
    root = _gallery(tmp_path / "gallery")
    (root / "bob" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"bob/broken\.png"):
        encode_folder(embed_fn, root, "L", SIZE, NORM)


def test_person_folder_without_images_is_an_error_naming_it(tmp_path, embed_fn):
    root = _gallery(tmp_path / "gallery")
    (root / "dee").mkdir()
    with pytest.raises(DataError, match=r"dee.*no images"):
        encode_folder(embed_fn, root, "L", SIZE, NORM)


def test_encodings_are_validated(tmp_path):
    good = Encodings(["a/1.png"], ["a"], np.array([[0.6, 0.8]], np.float32), "x" * 64, "enc")
    bad = Encodings(["a/1.png"], ["a"], np.array([[3.0, 4.0]], np.float32), "x" * 64, "enc")
    path = save_encodings(tmp_path / "bad.npz", bad)
    with pytest.raises(DataError, match=r"bad\.npz.*L2-normalised"):
        load_encodings(path)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(DataError, match=r"other\.npz"):
        load_encodings(tmp_path / "other.npz")
    with pytest.raises(ValueError, match="float32"):
        Encodings(["a"], ["a"], np.zeros((1, 2)), "", "")
    other = Encodings(["b/1.png"], ["b"], good.embeddings, "y" * 64, "enc2")
    with pytest.raises(ValueError, match="re-encode"):
        concat_encodings(good, other)
    gallery = Gallery(tau=1.0)
    gallery.enroll(good)
    gallery.check_encoder("x" * 64)
    with pytest.raises(ValueError, match="not the gallery's"):
        gallery.check_encoder("y" * 64)


def test_calibrated_threshold_is_stored_beside_the_encodings(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat([f"p{i}" for i in range(8)], 5)
    centres = rng.normal(size=(8, 16))
    emb = centres[np.repeat(np.arange(8), 5)] + rng.normal(0, 0.6, (40, 16))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    val = Encodings([f"{x}/{i}.png" for i, x in enumerate(labels)], labels.tolist(), emb, "z" * 64, "enc")
    record = calibrate(val, target_far=0.01)
    assert record["far"] <= 0.01 and record["n_impostor"] == 40 * 39 // 2 - 8 * 10
    assert 0 < record["tar"] <= 1

    gallery_path = save_encodings(tmp_path / "gallery.npz", val)
    save_threshold(gallery_path, record)
    assert threshold_path(gallery_path).name == "gallery.threshold.json"
    gallery = Gallery.load(gallery_path)
    assert gallery.tau == record["tau"]
    assert gallery.identify(emb[0]).name == "p0"
    with pytest.raises(ValueError, match="calibrate again"):
        load_threshold(gallery_path, "w" * 64)
