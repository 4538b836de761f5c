"""The face benchmark: embedding averaging by hand, incompatible encoders, and the stage end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import REPO, run, run_env, stage
from PIL import Image

from cnnlab.evaluate.benchmark import crop_embeddings
from cnnlab.face.evaluation.benchmark import (EmbeddingEnsemble, encoder_checkpoints, face_scores, load_face_encoders,
                                            load_test_faces, publish_faces, run_face_benchmark)
from cnnlab.evaluate.multicrop import CENTRE, FLIP, TEN
from cnnlab.face.training.module import FaceEncoderModule
from cnnlab.track import list_artifacts

SIZE = [32, 32]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm()


def test_flip_averaged_embedding_by_hand():
    torch.manual_seed(0)
    lin = nn.Linear(6, 3, bias=False)
    encoder = nn.Sequential(nn.Flatten(), lin).eval()
    x = torch.arange(6.0).view(1, 1, 2, 3)                  # one 2×3 image; its mirror reverses each row
    mirror = torch.tensor([[2.0, 1.0, 0.0], [5.0, 4.0, 3.0]]).view(1, 1, 2, 3)
    with torch.no_grad():
        a, b = _unit(lin.weight @ x.flatten()), _unit(lin.weight @ mirror.flatten())
        got = crop_embeddings(encoder, x, FLIP, (2, 3))
    torch.testing.assert_close(got[0], _unit(a + b))
    torch.testing.assert_close(crop_embeddings(encoder, x, CENTRE, (2, 3))[0], a)


def test_ten_crop_embedding_by_hand():
    torch.manual_seed(1)
    lin = nn.Linear(4, 5, bias=False)
    encoder = nn.Sequential(nn.Flatten(), lin).eval()
    x = torch.randn(1, 1, 3, 3)
    img = x[0, 0]
    windows = [img[:2, :2], img[:2, 1:], img[1:, :2], img[1:, 1:], img[:2, :2]]  # corners; centre of 3 → top-left
    windows += [w for w in (img.flip(1)[:2, :2], img.flip(1)[:2, 1:], img.flip(1)[1:, :2], img.flip(1)[1:, 1:],
                            img.flip(1)[:2, :2])]
    with torch.no_grad():
        expected = _unit(sum(_unit(lin.weight @ w.flatten()) for w in windows))
        got = crop_embeddings(encoder, x, TEN, (2, 2))[0]
    torch.testing.assert_close(got, expected)


def test_ensemble_concat_averages_squared_distances_and_mean_averages_vectors():
    torch.manual_seed(2)
    members = [nn.Linear(4, 3).eval(), nn.Linear(4, 3).eval()]
    x = torch.randn(2, 4)
    with torch.no_grad():
        e = [F.normalize(m(x), dim=1) for m in members]
        cat = EmbeddingEnsemble(members, "concat")(x)
        mean = EmbeddingEnsemble(members, "mean")(x)
    torch.testing.assert_close(cat.norm(dim=1), torch.ones(2))
    torch.testing.assert_close(cat, torch.cat(e, 1) / math.sqrt(2))
    member_d = [((ei[0] - ei[1]) ** 2).sum() for ei in e]
    torch.testing.assert_close(((cat[0] - cat[1]) ** 2).sum(), (member_d[0] + member_d[1]) / 2)
    torch.testing.assert_close(mean, F.normalize(e[0] + e[1], dim=1))
    with pytest.raises(ValueError, match="combine"):
        EmbeddingEnsemble(members, "max")


def test_encoder_checkpoints_reuse_the_default_encoder_as_seed_zero():
    assert encoder_checkpoints("models/faces/enc-ids", [0, 2]) == [Path("models/faces/enc-ids/best.ckpt"),
                                                                   Path("models/faces/enc-ids-seed2/best.ckpt")]


# ---- on a tiny prepared identity split ------------------------------------------------------------

@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    """8 synthetic people × 5 greyscale images, split by identity (2 val, 2 test people)."""
    from cnnlab.data.prepare import SplitConfig, prepare_dataset

    root = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(0)
    people = rng.integers(0, 256, (8, 24, 20))
    items = [(f"{i}", f"p{p}", Image.fromarray(np.clip(people[p] + rng.normal(0, 20, (24, 20)), 0, 255)
                                               .astype(np.uint8), "L"))
             for p in range(8) for i in range(5)]
    prepare_dataset(items, root / "prepared", SplitConfig(by="identities", val_ids=2, test_ids=2), channels=1,
                    name="tiny_faces_ids")
    return root / "prepared"


def _save_encoder(path: Path, identities: list[str], seed: int, **kw) -> Path:
    """A randomly initialised encoder checkpoint (what ``load_encoder`` reads)."""
    torch.manual_seed(seed)
    args = dict(arch="lenet5", in_chans=1, input_size=SIZE, normalization={"mean": [0.5], "std": [0.25]},
                embedding_dim=8, identities=identities) | kw
    module = FaceEncoderModule(**args)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


def _train_people(prepared: Path) -> list[str]:
    return json.loads((prepared / "dataset.json").read_text())["classes_per_split"]["train"]


def test_encoders_that_disagree_are_named(tmp_path, faces):
    people = _train_people(faces)
    a = _save_encoder(tmp_path / "a.ckpt", people, 0)
    b = _save_encoder(tmp_path / "b.ckpt", people, 1, embedding_dim=16)
    c = _save_encoder(tmp_path / "c.ckpt", people, 2, input_size=[36, 36])
    with pytest.raises(ValueError, match=r"face encoders disagree on embedding_dim: .*a\.ckpt has 8, .*b\.ckpt has 16"):
        load_face_encoders([a, b])
    with pytest.raises(ValueError, match=r"input_size: .*a\.ckpt has \[32, 32\], .*c\.ckpt has \[36, 36\]"):
        run_face_benchmark([a, c], faces, {"flip": FLIP}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_encoder_that_saw_a_test_person_is_refused(tmp_path, faces):
    test_people = json.loads((faces / "dataset.json").read_text())["classes_per_split"]["test"]
    ok = _save_encoder(tmp_path / "ok.ckpt", _train_people(faces), 0)
    seen = _save_encoder(tmp_path / "seen.ckpt", _train_people(faces) + test_people[:1], 1)
    with pytest.raises(ValueError, match=rf"seen\.ckpt was trained on test people \['{test_people[0]}'\]"):
        run_face_benchmark([ok, seen], faces, {}, tmp_path / "out")


def test_benchmark_faces_stage_end_to_end(tmp_path, faces):
    run_dir = tmp_path / "models" / "enc-ids"
    ckpts = [_save_encoder(p, _train_people(faces), s) for s, p in enumerate(encoder_checkpoints(run_dir, [0, 1]))]
    out = tmp_path / "bench"
    run(stage("benchmark_faces", f"face.paths.identity_split={faces}", f"face.paths.run={run_dir}",
              "face.encoder.name=enc", "benchmark.faces.seeds=[0,1]", f"benchmark.faces.out={out}",
              "benchmark.batch_size=4", "benchmark.faces.repeats=1"), REPO, run_env(tmp_path))

    m = json.loads((out / "metrics.json").read_text())
    assert m["n_members"] == 2 and m["n_test"] == 10 and m["n_people"] == 2
    assert [m[f"n_crops.{c}"] for c in ("centre", "flip", "ten", "scales_flip")] == [1, 2, 10, 4]
    for model in ("single", "ensemble", "ensemble_mean"):
        for crops in ("centre", "flip", "ten", "scales_flip"):
            p = f"{model}.{crops}"
            assert 0 <= m[f"{p}.rank1"] <= 1 and 0 <= m[f"{p}.eer"] <= 1 and m[f"{p}.latency_ms"] > 0
    assert m["single.centre.latency_x"] == 1.0 and m["single.centre.memory_x"] == 1.0
    # more crops in one batch hold more activations; two encoders hold twice the weights
    assert m["single.ten.memory_mib"] > m["single.flip.memory_mib"] > m["single.centre.memory_mib"]
    assert m["ensemble.centre.memory_mib"] > m["single.centre.memory_mib"]

    # The figures are what the library computes from the same checkpoints and images.
    members, hps = load_face_encoders(ckpts)
    images, people = load_test_faces(faces, hps[0], 1.143)
    labels = torch.as_tensor(np.unique(people, return_inverse=True)[1])
    single = face_scores(crop_embeddings(members[0], images, FLIP, SIZE), labels)
    assert m["single.flip.rank1"] == pytest.approx(single["rank1"])
    assert m["single.flip.eer"] == pytest.approx(single["eer"])
    ens = face_scores(crop_embeddings(EmbeddingEnsemble(members), images, TEN, SIZE), labels)
    assert m["ensemble.ten.rank1"] == pytest.approx(ens["rank1"])
    second = face_scores(crop_embeddings(members[1], images, CENTRE, SIZE), labels)["rank1"]
    assert m["single.centre.rank1_mean"] == pytest.approx((m["single.centre.rank1"] + second) / 2)
    table = (out / "table.md").read_text()
    assert "| ensemble of 2 (concatenated) | ten | 10 |" in table and "| single, mean ± std of 2 | flip | 2 |" in table
    doc = publish_faces(out, "tiny faces", notes="A note.", command="x", path=tmp_path / "B.md").read_text()
    assert doc.count("<!-- bench:ensemble-faces -->") == 1 and table.splitlines()[0] in doc and "A note." in doc
    assert "| tiny faces | single | centre (1) | " in doc and "10.07 % → 9.15 %" in doc

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("cnnlab").experiment_id],
                              "tags.stage = 'benchmark_faces'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.tags["dataset"] == "prepared" and runs[0].data.tags["seeds"] == "0,1"
    assert runs[0].data.metrics["ensemble.flip.eer"] == pytest.approx(m["ensemble.flip.eer"])
    arts = set(list_artifacts(client.tracking_uri, runs[0].info.run_id, "benchmark"))
    assert {"benchmark/table.md", "benchmark/metrics.json"} <= arts
