"""dlib's 128-d face ResNet imported into PyTorch (cnnlab.face.models.dlib_resnet) gives dlib's descriptors.

The reference is dlib itself: ``face_recognition_model_v1.compute_face_descriptor`` on the same
150x150 chips, aligned by dlib (frontal detector + 5-point landmarks + ``get_face_chip``) from
embedded ORL images. The network is parsed from dlib's file once per module.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
import torch

dlib = pytest.importorskip("dlib")
if importlib.util.find_spec("face_recognition_models") is None:
    pytest.skip("face_recognition_models is not installed", allow_module_level=True)

from cnnlab.face.models import dlib_dat as DAT, dlib_resnet as D  # noqa: E402

ORL = Path(__file__).resolve().parents[1] / "data" / "raw" / "orl_faces"
# (subject, image) candidates; the first N_CHIPS on which dlib finds exactly one face are used.
CANDIDATES = [(1, 1), (2, 1), (3, 2), (5, 3), (7, 1), (9, 4), (11, 1), (13, 2)]
N_CHIPS = 4


@pytest.fixture(scope="module")
def model() -> D.DlibFaceResNet:
    return DAT.load_dlib_resnet()


@pytest.fixture(scope="module")
def chips() -> list[np.ndarray]:
    """Aligned 150x150 RGB uint8 chips made by dlib from ORL images, plus one of uniform noise."""
    from PIL import Image

    detector = dlib.get_frontal_face_detector()
    shapes = dlib.shape_predictor(str(D.model_path("shape_predictor_5_face_landmarks.dat")))
    out = []
    for subject, n in CANDIDATES:
        rgb = np.asarray(Image.open(ORL / f"s{subject}" / f"{n}.pgm").convert("RGB"))
        for upsample in (1, 2):
            faces = detector(rgb, upsample)
            if len(faces) == 1:
                out.append(dlib.get_face_chip(rgb, shapes(rgb, faces[0]), size=150, padding=0.25))
                break
        if len(out) == N_CHIPS:
            break
    assert len(out) == N_CHIPS, "dlib found too few faces among the candidate ORL images"
    out.append(np.random.default_rng(0).integers(0, 256, (150, 150, 3), dtype=np.uint8))
    return out


@pytest.fixture(scope="module")
def reference(chips) -> np.ndarray:
    facerec = dlib.face_recognition_model_v1(str(D.model_path()))
    return np.array([np.asarray(facerec.compute_face_descriptor(c)) for c in chips])


@pytest.fixture(scope="module")
def ours(model, chips) -> np.ndarray:
    with torch.no_grad():
        return model(D.preprocess(chips)).numpy()


def test_descriptors_match_dlib(chips, reference, ours):
    assert ours.shape == reference.shape == (len(chips), 128)
    cos = (ours * reference).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
    diff = np.abs(ours - reference).max(axis=1)
    assert (cos >= 0.999).all(), cos
    assert (diff <= 1e-4).all(), diff  # measured ~4e-7: the same float32 computation


def test_normalized_embeddings(model, chips, reference):
    with torch.no_grad():
        emb = model.embed(D.preprocess(chips)).numpy()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(emb, reference / np.linalg.norm(reference, axis=1, keepdims=True), atol=1e-5)


def test_same_decisions_at_dlib_threshold(reference, ours):
    """The file's own loss threshold (0.6 on raw descriptors) decides every pair as dlib does."""
    net_threshold = DAT.parse_dlib_dat(D.model_path()).loss_attrs["distance_threshold"]
    assert net_threshold == pytest.approx(0.6)
    dist = np.linalg.norm(ours[:, None] - ours[None], axis=-1)
    ref = np.linalg.norm(reference[:, None] - reference[None], axis=-1)
    np.testing.assert_array_equal(dist < net_threshold, ref < net_threshold)


def test_parameter_count_and_shapes(model):
    net = DAT.parse_dlib_dat(D.model_path())
    assert net.loss == "loss_metric_2" and net.input == "input_rgb_image_sized"
    assert net.input_attrs["mean"] == pytest.approx((122.782, 117.001, 104.298), abs=1e-4)
    assert sum(p.numel() for p in model.parameters()) == net.num_params == 5_614_592
    sd = model.state_dict()
    assert sd["stem.conv.weight"].shape == (32, 3, 7, 7)
    assert sd["level3.0.conv1.weight"].shape == (64, 32, 3, 3)
    assert sd["level1.0.conv1.weight"].shape == (256, 128, 3, 3)
    assert sd["level0.0.affine2.bias"].shape == (256,)
    assert sd["fc.weight"].shape == (128, 256)
    assert [layer.kind for layer in net.layers[:4]] == ["con", "affine", "relu", "max_pool"]
    assert net.layers[-1].attrs["weights_shape"] == (256, 128, 1, 1)  # inputs x outputs: fc.weight is its transpose


def test_spatial_sizes_follow_dlib(model):
    """150 → 72 → 35, then 35, 17, 8, 4 (max of 3x3 conv and 4x4 pool at level1) and 2."""
    sizes = []
    hooks = [getattr(model, n).register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[1:])))
             for n in ("stem", "level4", "level3", "level2", "level1", "level0")]
    with torch.no_grad():
        model(torch.zeros(1, 3, 150, 150))
    for h in hooks:
        h.remove()
    assert sizes == [(32, 35, 35), (32, 35, 35), (64, 17, 17), (128, 8, 8), (256, 4, 4), (256, 2, 2)]


def test_add_prev_pads_the_smaller_input_at_the_end():
    a = torch.ones(1, 2, 3, 3)
    b = torch.full((1, 1, 4, 4), 10.0)
    out = D.add_prev(a, b)
    assert out.shape == (1, 2, 4, 4)
    assert out[0, 0, :3, :3].eq(11).all() and out[0, 0, 3].eq(10).all() and out[0, 0, :, 3].eq(10).all()
    assert out[0, 1, :3, :3].eq(1).all() and out[0, 1, 3].eq(0).all()


def test_rejects_truncated_file(tmp_path):
    data = D.model_path().read_bytes()
    for cut in (len(data) // 2, len(data) - 1):
        bad = tmp_path / f"truncated_{cut}.dat"
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=re.escape(str(bad))):
            DAT.read_dlib_dat(bad)


def test_rejects_other_files(tmp_path):
    text = tmp_path / "notes.dat"
    text.write_text("this is not a dlib network\n")
    with pytest.raises(ValueError, match=re.escape(str(text))):
        DAT.read_dlib_dat(text)
    with pytest.raises(ValueError, match="not a dlib"):
        DAT.load_dlib_resnet(text)
    for name in ("shape_predictor_5_face_landmarks.dat", "mmod_human_face_detector.dat"):
        other = D.model_path(name)  # real dlib files of other kinds
        with pytest.raises(ValueError, match=re.escape(str(other))):
            DAT.read_dlib_dat(other)


def test_cached_state_dict_round_trip(tmp_path, model, chips, ours):
    out = DAT.convert(None, tmp_path / "cache" / "dlib_face_resnet.pt")
    sd = torch.load(out, map_location="cpu", weights_only=True)
    assert set(sd) == set(model.state_dict())
    again = DAT.load_dlib_resnet(out)
    with torch.no_grad():
        np.testing.assert_array_equal(again(D.preprocess(chips)).numpy(), ours)
    assert not any(p.name.endswith(".tmp") for p in out.parent.iterdir())


def test_finetune_groups():
    net = D.DlibFaceResNet()
    assert [n for n, _ in net.named_children()] == list(D.FINETUNE_GROUPS)
    assert net.set_finetune("head") == ["fc.weight"]
    partial = net.set_finetune("partial", n_levels=2)
    assert {n.split(".")[0] for n in partial} == {"level1", "level0", "fc"}
    assert len(net.set_finetune("full")) == len(list(net.parameters()))
    with pytest.raises(ValueError, match="strategy"):
        net.set_finetune("gradual")


def test_input_checks(model):
    with pytest.raises(ValueError, match="150x150"):
        model(torch.zeros(1, 3, 112, 92))
    assert D.preprocess(np.zeros((150, 150), np.uint8)).shape == (1, 3, 150, 150)


def test_model_path_names_the_package(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install face_recognition_models"):
        D.model_path()
