"""Identity folds: every person a test person once, fold folders the face code reads, N-way rank-1."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.face.evaluation.folds import identity_folds, nway_rank1, scores, summarize, write_fold

PEOPLE = [f"s{i}" for i in range(1, 21)]


def test_every_person_is_tested_once_and_never_trained_on_in_that_fold():
    folds = identity_folds(PEOPLE, k=5, seed=0)
    assert sorted(p for f in folds for p in f["test"]) == sorted(PEOPLE)
    assert sorted(p for f in folds for p in f["val"]) == sorted(PEOPLE)
    for i, f in enumerate(folds):
        assert len(f["test"]) == len(f["val"]) == 4 and len(f["train"]) == 12
        assert not set(f["test"]) & set(f["train"]) and not set(f["val"]) & set(f["train"])
        assert not set(f["test"]) & set(f["val"])
        assert f["val"] == folds[(i + 1) % 5]["test"]
    assert identity_folds(PEOPLE, 5, seed=0) == folds != identity_folds(PEOPLE, 5, seed=1)
    with pytest.raises(ValueError, match="3 <= k"):
        identity_folds(PEOPLE, k=2)


def _aligned(root: Path, people: list[str], shots: int = 3) -> Path:
    rows = []
    for n, p in enumerate(people):
        for s in range(shots):
            rel = f"train/{p}/{s}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((12, 12, 3), 20 * n + s, np.uint8)).save(root / rel)
            rows.append({"path": rel, "label": p, "split": "train"})
    (root / "dataset.json").write_text(json.dumps({"name": "x", "classes": people, "channels": 3}))
    with open(root / "manifest.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "label", "split"])
        w.writeheader()
        w.writerows(rows)
    return root


def test_a_fold_folder_is_a_prepared_identity_split(tmp_path):
    from cnnlab.face.evaluation.heldout import load_splits

    people = PEOPLE[:6]
    aligned = _aligned(tmp_path / "aligned", people)
    fold = identity_folds(people, k=3)[0]
    out = write_fold(aligned, tmp_path / "fold", fold, size=(6, 5))
    splits = load_splits(out)                       # refuses people in two splits
    assert {s: sorted(set(splits[s].labels)) for s in splits} == {s: sorted(fold[s]) for s in splits}
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["counts"] == {"train": 6, "val": 6, "test": 6} and meta["image_size"] == [6, 5]
    train_vals = [20 * people.index(p) + s for p in fold["train"] for s in range(3)]
    assert meta["mean"][0] == pytest.approx(np.mean(train_vals) / 255, abs=1e-4)
    with Image.open(splits["test"].paths[0]) as img:
        assert img.size == (5, 6)
    with pytest.raises(ValueError, match="no images of"):
        write_fold(aligned, tmp_path / "bad", {"train": ["nobody"], "val": [], "test": []})


def test_nway_rank1_counts_probes_of_the_probe_people_against_everyone():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.array(["a", "b", "c", "d"]), 3)
    centres = {p: rng.normal(size=8) for p in "abcd"}
    emb = np.stack([centres[p] + 0.01 * rng.normal(size=8) for p in labels])
    correct, total = nway_rank1(emb, labels, ["a", "b"], trials=5)
    assert total == 5 * 2 * 2 and correct == total           # well separated: every probe right
    emb[labels == "a"] = centres["c"] + 0.01 * rng.normal(size=(3, 8))   # a looks like c, a non-probe person
    correct, total = nway_rank1(emb, labels, ["a", "b"], trials=20)
    assert total == 80 and 45 <= correct <= 75                 # b always right, a about half the time
    assert nway_rank1(emb, labels, ["b"], trials=20) == (40, 40)
    # among b and d only, a's confusion does not count
    assert scores(emb, labels, ["b", "d"])["rank1"] == pytest.approx(1.0)


def test_summarize_is_mean_and_population_std():
    s = summarize([{"rank1": 0.5, "eer": 0.1, "tar_at_far_1pct": 1.0}, {"rank1": 1.0, "eer": 0.3,
                                                                        "tar_at_far_1pct": 1.0}])
    assert s["rank1"] == {"mean": 0.75, "std": 0.25, "folds": [0.5, 1.0]} and s["eer"]["mean"] == pytest.approx(0.2)


def _result():
    def m(r, e):
        return {"test": summarize([{"rank1": r, "eer": e, "tar_at_far_1pct": 0.5}] * 2),
                "val": summarize([{"rank1": r, "eer": e, "tar_at_far_1pct": 0.5}] * 2), "nway_rank1": r - 0.1}

    folds = identity_folds(PEOPLE, 5)
    return {"folds": folds, "methods": {"Fisherfaces": m(0.8, 0.15), "course39": m(0.85, 0.12)},
            "recipe": [], "seeds": [0], "flip": False, "seconds": {"baselines": 3.0}}


def test_the_fold_table_goes_into_benchmarks_and_the_comparison(tmp_path):
    from cnnlab.bench.face_folds import format_section, write_comparison_section
    from cnnlab.bench.report import write_section

    section = format_section(_result(), (1.0, 2.0), 60.0)
    assert "| course39 | 0.850 ± 0.000 | 0.120 ± 0.000 | 0.500 ± 0.000 | 0.750 |" in section
    assert "**beats it on both**" in section
    bench = write_section("face_folds", section, path=tmp_path / "B.md")
    assert "<!-- bench:face_folds -->" in bench.read_text()
    comparison = tmp_path / "comparison.md"
    comparison.write_text("# Faces\n\n| pipeline table |\n")
    write_comparison_section(_result(), comparison)
    write_comparison_section(_result(), comparison)            # a rerun replaces its block
    text = comparison.read_text()
    assert text.startswith("# Faces\n\n| pipeline table |") and len(re.findall("Identity folds", text)) == 1


def test_levers_are_chosen_on_validation_people(tmp_path):
    from cnnlab.bench.face_levers import collect

    def lever(val_eer, test_eer):
        return {"val": {"rank1": 0.8, "eer": val_eer, "tar_at_far_1pct": 0.5},
                "test": {"rank1": 0.8, "eer": test_eer, "tar_at_far_1pct": 0.5}}

    for i in range(2):                          # the test figures would pick another lever: they must not
        levers = {"base (as configured)": lever(0.20, 0.10), "miner: batch hard": lever(0.10, 0.30)}
        (tmp_path / f"fold{i}.json").write_text(json.dumps({"fold": identity_folds(PEOPLE, 5)[i], "index": i, "k": 5,
                                                            "levers": levers}))
    section, chosen = collect(tmp_path)
    assert chosen == "miner: batch hard" and "| miner: batch hard **(chosen)** |" in section
    assert "| -0.100 |" in section


def test_validation_best_uses_validation_people_and_prefers_the_untrained_on_ties():
    from cnnlab.face.evaluation.compare import validation_best

    val = {"rank1": 1.0, "eer": 0.0, "tar_at_far_1pct": 1.0}
    assert validation_best({"ft": (val, "finetune"), "asis": (val, "pretrained")}) == "asis"
    worse = {"rank1": 0.9, "eer": 0.05, "tar_at_far_1pct": 0.8}
    assert validation_best({"asis": (worse, "pretrained"), "scratch": (val, "scratch")}) == "scratch"
    with pytest.raises(ValueError, match="no validation metrics"):
        validation_best({"x": ({}, "scratch")})


def test_levers_whole_run_trains_every_fold_and_writes_one_table(tmp_path, monkeypatch):
    """Without --fold/--collect one invocation runs the chosen folds in turn (stale results of other
    folds are dropped) and writes the section with its own command."""
    import cnnlab.bench.face_levers as levers_bench

    ran = []

    def fake_run_fold(i, k, levers, out):
        ran.append(i)
        scores = {"val": {"rank1": 0.8, "eer": 0.1, "tar_at_far_1pct": 0.5},
                  "test": {"rank1": 0.7, "eer": 0.2, "tar_at_far_1pct": 0.4}}
        path = out / f"fold{i}.json"
        path.write_text(json.dumps({"fold": identity_folds(PEOPLE, k)[i], "index": i, "k": k,
                                    "levers": {n: scores for n in levers}}))
        return path

    monkeypatch.setattr(levers_bench, "run_fold", fake_run_fold)
    out, bench = tmp_path / "levers", tmp_path / "B.md"
    out.mkdir()
    (out / "fold1.json").write_text("{}")                        # an earlier run's fold: not this table's
    assert levers_bench.main(["--fold-ids", "0", "2", "--levers", "base (as configured)", "--out", str(out),
                              "--output", str(bench)]) == 0
    text = bench.read_text()
    assert ran == [0, 2] and not (out / "fold1.json").exists()
    assert "fold 0 (val" in text and "fold 2 (val" in text and "fold 1 (val" not in text
    assert "every fold in this one run" in text
    assert "*Command:* `python -m cnnlab.bench.face_levers --fold-ids 0 2 --levers 'base (as configured)'" in text
    with pytest.raises(SystemExit):
        levers_bench.main(["--fold-ids", "7", "--out", str(out), "--output", str(bench)])


def test_bench_config_is_the_face_stages_one():
    """The fold and lever benchmarks compose conf/faces.yaml (the face group lives there, not in config.yaml)."""
    from cnnlab.bench.face_folds import compose, scratch_size

    cfg = compose("encoder=course39", "face.train.max_epochs=60")
    assert cfg.face.encoder.name == "course39" and cfg.face.scheduler.T_max == 60
    assert cfg.face.paths.identity_split == "data/aligned/orl_faces_ids"
    assert scratch_size([]) == (39, 39)
