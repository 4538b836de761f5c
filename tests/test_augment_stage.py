"""The augment stage: PCA decomposition, materialised variants, preview grid, MLflow run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, run, run_env, stage
from PIL import Image

from cnnlab.augment import fit_pca_colour, load_pca_colour
from cnnlab.augment.materialise import materialise
from cnnlab.augment.pca import prepared_images
from cnnlab.data.prepare import SplitConfig, prepare_dataset
from cnnlab.track import list_artifacts

CLASSES = ("cat", "dog", "owl")


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_rgb(tmp_path_factory) -> Path:
    """A prepared RGB folder: 3 classes × 6 images of 24×24 (4 train, 1 val, 1 test each)."""
    rng = np.random.default_rng(0)
    items = []
    for label in CLASSES:
        for i in range(6):
            base = rng.integers(40, 200, size=3)
            arr = (base + rng.integers(-30, 30, size=(24, 24, 3))).clip(0, 255).astype(np.uint8)
            items.append((f"{label}{i}", label, Image.fromarray(arr, "RGB")))
    out = tmp_path_factory.mktemp("tiny") / "prepared"
    prepare_dataset(items, out, SplitConfig(val=1 / 6, test=1 / 6), channels=3, name="tiny")
    return out


def _manifest(root: Path) -> list[dict]:
    with open(root / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_fit_from_a_prepared_folder_uses_its_train_split(tiny_rgb):
    train = list(prepared_images(tiny_rgb))
    assert len(train) == 12 and all(im.shape == (3, 24, 24) for im in train)
    for a, b in zip(fit_pca_colour(tiny_rgb), fit_pca_colour(train)):
        np.testing.assert_array_equal(a, b)


def test_materialise_is_deterministic_and_keeps_val_test(tiny_rgb, tmp_path):
    from torchvision.transforms import v2

    policy = v2.Compose([v2.RandomHorizontalFlip(), v2.RandomRotation(20)])
    metas = [materialise(tiny_rgb, tmp_path / name, policy, k=2, seed=5) for name in ("a", "b")]
    assert metas[0] == {**metas[1], "augmented": {**metas[1]["augmented"], "source": str(tiny_rgb)}}
    rows = _manifest(tmp_path / "a")
    assert all((tmp_path / "a" / r["path"]).read_bytes() == (tmp_path / "b" / r["path"]).read_bytes() for r in rows)
    prepared = {(r["path"], r["split"]) for r in _manifest(tiny_rgb)}
    assert {(r["path"], r["split"]) for r in rows if r["split"] != "train"} == {p for p in prepared if p[1] != "train"}
    assert metas[0]["counts"] == {"train": 36, "val": 3, "test": 3}


def test_stage_end_to_end(tiny_rgb, tmp_path):
    from mlflow.tracking import MlflowClient

    from cnnlab.data.datamodule import ImageFolderDataModule

    out = tmp_path / "augmented"
    env = run_env(tmp_path)
    run(stage("augment", f"paths.prepared={tiny_rgb}", f"++paths.augmented={out}", "++augment_k=3",
              "augment=heavy", "data=folder", "data.name=tiny", "data.root=unused"), REPO, env)

    # k variants per training image beside the originals; val/test untouched
    rows = _manifest(out)
    train = [r for r in rows if r["split"] == "train"]
    assert len(train) == 12 * 4 and all((out / r["path"]).is_file() for r in rows)
    assert sum(r["path"].endswith("_aug3.png") for r in train) == 12
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["counts"] == {"train": 48, "val": 3, "test": 3}
    assert meta["augmented"]["policy"] == "heavy" and meta["augmented"]["k"] == 3
    assert meta["classes"] == list(CLASSES) and meta["image_size"] == [24, 24]

    # the stored decomposition is the train split's
    for a, b in zip(load_pca_colour(out / "pca_colour.json"), fit_pca_colour(tiny_rgb)):
        np.testing.assert_allclose(a, b, rtol=1e-12)

    # preview: 3 class rows × (original + 7 variants), a real image
    with Image.open(out / "preview.png") as im:
        assert im.width > 8 * 60 and im.height > 3 * 60

    # the augmented folder trains like a prepared one, with augmentation in a worker process
    dm = ImageFolderDataModule(out, (24, 24), batch_size=8, num_workers=1, train_transform=None)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 3, 24, 24) and x.dtype == torch.float32

    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("cnnlab")
    runs = client.search_runs([exp.experiment_id], "tags.stage = 'augment'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.tags["augment"] == "heavy" and runs[0].data.tags["dataset"] == "tiny"
    assert runs[0].data.params["n_train"] == "48"  # a fact: a param
    assert set(list_artifacts(client.tracking_uri, runs[0].info.run_id)) >= {"preview.png", "pca_colour.json"}


def test_k_zero_writes_only_the_decomposition_and_preview(tiny_rgb, tmp_path, hydra_cfg):
    from cnnlab.stages.augment import run as run_stage

    cfg = hydra_cfg(f"paths.prepared={tiny_rgb}", f"++paths.augmented={tmp_path / 'aug'}", "++augment_k=0",
                    "augment=standard")
    metrics = run_stage(cfg, "standard")
    assert sorted(p.name for p in (tmp_path / "aug").iterdir()) == ["pca_colour.json", "preview.png"]
    assert set(metrics) == {"pca_eigval_0", "pca_eigval_1", "pca_eigval_2"}


def test_bad_input_names_the_problem(tmp_path, hydra_cfg):
    from cnnlab.data.images import DataError
    from cnnlab.stages.augment import run as run_stage

    cfg = hydra_cfg(f"paths.prepared={tmp_path / 'nothing'}", f"++paths.augmented={tmp_path / 'aug'}",
                    "++augment_k=1")
    with pytest.raises(DataError, match=r"nothing/dataset\.json not found"):
        run_stage(cfg, "affine")
    with pytest.raises(ValueError, match="augment_k must be >= 0"):
        run_stage(hydra_cfg(f"++paths.augmented={tmp_path / 'aug'}", "++augment_k=-1"), "affine")
    assert not (tmp_path / "aug").exists()
