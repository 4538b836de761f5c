"""Own data in two commands (issue 22, part 3): prepare a named folder, then train, evaluate and
predict with only ``data.name`` (no ``data.root`` repeated), and the pipeline recipe."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, copy_repo, run, run_env, stage
from PIL import Image

from cnnlab.cli import main as cli


def _folder(root: Path, n: int = 10) -> Path:
    """Two classes of 20×16 RGB images (dark and bright), plus a phone photo and a 16-bit scan."""
    rng = np.random.default_rng(0)
    for label, lo in (("dark", 0), ("bright", 150)):
        (root / label).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(lo, lo + 100, (20, 16, 3), dtype=np.uint8)).save(root / label / f"{i}.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rng.integers(150, 250, (16, 20, 3), dtype=np.uint8)).save(root / "bright" / "phone.jpg", exif=exif)
    Image.fromarray(rng.integers(0, 20000, (20, 16)).astype(np.uint16)).save(root / "dark" / "scan.png")
    return root


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """prepare data=folder data.root=DIR data.name=pets; train and evaluate with data.name=pets only."""
    work = tmp_path_factory.mktemp("own")
    images = _folder(work / "my photos")
    env = run_env(work, CNNLAB_CONF=str(REPO / "conf"))
    prep = run(stage("prepare", "data=folder", f"data.root={images}", "data.name=pets"), work, env)
    train = run(stage("train", "data.name=pets", "debug=tiny", "num_workers=0"), work, env)
    run(stage("evaluate", "data.name=pets"), work, env)
    return work, images, prep.stdout + prep.stderr, train.stdout + train.stderr


def test_named_folder_trains_and_evaluates_without_its_root(own):
    work, images, prep_log, train_log = own
    meta = json.loads((work / "data/prepared/pets/dataset.json").read_text())
    assert meta["data"]["root"] == str(images) and meta["name"] == "pets"
    assert sum(meta["counts"].values()) == 22 and meta["import"]["n_changed"] == 2
    assert "bright/phone.jpg: EXIF orientation 6 applied" in prep_log and "dark/scan.png: 16-bit" in prep_log
    assert f"root {images}" in train_log  # the train stage found the recorded data config
    ckpt = torch.load(work / "models/pets/lenet5/seed0/best.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["classes"] == ["bright", "dark"] and ckpt["hyper_parameters"]["in_chans"] == 3
    assert json.loads((work / "reports/eval/pets/lenet5/seed0/metrics.json").read_text())["n"] == meta["counts"]["test"]


def test_predict_agrees_with_evaluate(own, capsys):
    work = own[0]
    ckpt, out = work / "models/pets/lenet5/seed0/best.ckpt", work / "test.csv"
    assert cli(["predict", str(ckpt), str(work / "data/prepared/pets/test"), "-k", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    rows = list(csv.DictReader(open(out)))
    assert list(rows[0]) == ["path", "top1", "prob1", "top2", "prob2"] and len(printed) == len(rows)
    evaluated = {r["path"].removeprefix("test/"): r for r in
                 csv.DictReader(open(work / "reports/eval/pets/lenet5/seed0/predictions.csv"))}
    assert sorted(r["path"] for r in rows) == sorted(evaluated)
    for r in rows:  # the same images, decoded and transformed the same way, give the same answer
        assert r["top1"] == evaluated[r["path"]]["predicted"]
        assert float(r["prob1"]) == pytest.approx(float(evaluated[r["path"]]["prob"]), abs=1e-5)
        assert float(r["prob1"]) + float(r["prob2"]) == pytest.approx(1.0, abs=1e-5)
        assert {r["top1"], r["top2"]} == {"bright", "dark"}


def test_predict_on_originals_writes_csv_beside_them(own, capsys):
    work, images = own[0], own[1]
    ckpt = work / "models/pets/lenet5/seed0/best.ckpt"
    assert cli(["predict", str(ckpt), str(images / "bright" / "phone.jpg"), "-k", "1"]) == 0
    err = capsys.readouterr().err
    assert "EXIF orientation 6 applied" in err
    rows = list(csv.DictReader(open(images / "bright" / "phone.predictions.csv")))
    assert [r["path"] for r in rows] == ["phone.jpg"] and rows[0]["top1"] in ("bright", "dark")


def test_predict_errors_are_one_line(own, tmp_path, capsys):
    work, images = own[0], own[1]
    ckpt = work / "models/pets/lenet5/seed0/best.ckpt"
    encoder = tmp_path / "encoder.ckpt"  # what a face encoder checkpoint holds: no classes
    torch.save({"hyper_parameters": {"arch": "lenet5", "embedding_dim": 128}, "state_dict": {}}, encoder)
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    broken = tmp_path / "broken"
    shutil.copytree(images, broken)
    (broken / "dark" / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"truncated")
    cases = [([str(encoder), str(images)], "not a cnnlab classifier checkpoint"),
             ([str(notes), str(images)], "not a checkpoint"),
             ([str(ckpt), str(notes)], "not an image file"),
             ([str(ckpt), str(tmp_path / "nowhere")], "no such image or folder"),
             ([str(ckpt), str(broken)], "cannot read image")]
    for args, message in cases:
        assert cli(["predict", *args, "--out", str(tmp_path / "p.csv")]) == 1, args
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert str(broken / "dark" / "cut.png") in err
    assert not (tmp_path / "p.csv").exists()  # no partial output


def test_pipeline_recipe_adds_a_folder(tmp_path):
    """README recipe: conf/data/<NAME>.yaml from the example, NAME under `classify:` of the workflow config."""
    from cnnlab.dag import snakemake_jobs

    repo = copy_repo(tmp_path / "repo")
    images = _folder(tmp_path / "pets")
    example = (repo / "conf/data/my_images.yaml").read_text()
    (repo / "conf/data/pets.yaml").write_text(example.replace("name: my_images", "name: pets")
                                              .replace("root: data/raw/my_images", f"root: {images}"))
    jobs = {j.stage_name: j for j in snakemake_jobs(config=["classify=[digits,pets]"], cwd=repo)}
    assert {"prepare-pets", "train-pets-lenet5-seed0", "evaluate-pets-lenet5-seed0", "benchmark-pets-lenet5"} <= set(jobs)
    assert "data=pets" in jobs["prepare-pets"].shell and str(images) in jobs["prepare-pets"].input
