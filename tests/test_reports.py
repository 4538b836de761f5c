"""What the ecosystems' own viewers show after a real run: `snakemake --report` holds the figures
with their captions, grouped by stage, and `dvc plots show` draws the data files (learning curves,
confusion) that dvc.yaml declares as top-level plots."""

from __future__ import annotations

import csv
import json
import re
import zipfile
from pathlib import Path

import pytest
import yaml
from conftest import BIN, run, run_env
from test_pipeline import SNAKEMAKE_TINY

RUN = "models/digits/lenet5/seed0"
EVAL = "reports/eval/digits/lenet5/seed0"
# prepare → train → evaluate of one model, and the augmentation preview (a folder output)
TARGETS = [f"{EVAL}/metrics.json", "data/augmented/digits"]


@pytest.mark.slow   # a real prepare → train → evaluate: 2 to 8 minutes on 2 shared cores
def test_report_holds_figures_and_dvc_plots_draw_the_data(repo_copy: Path):
    env = run_env(repo_copy)
    (repo_copy / "tiny.yaml").write_text(SNAKEMAKE_TINY)
    smk = [str(BIN / "snakemake"), *TARGETS, "--cores", "2", "--configfile", "tiny.yaml"]   # --configfile takes 1+
    run(smk, repo_copy, env)
    for name in ("history.csv", "learning_curves.png"):
        assert (repo_copy / RUN / name).is_file(), name

    # Snakemake's report: every figure of the jobs run, under its stage and subcategory, with its caption
    run([*smk, "--report", "report.zip"], repo_copy, env)
    with zipfile.ZipFile(repo_copy / "report.zip") as z:
        figures = sorted(Path(n).name for n in z.namelist() if n.startswith("report/data/"))
        html = z.read("report/report.html").decode()
    assert figures == ["confusion.png", "errors.png", "learning_curves.png", "preview.png"]   # figures only
    categories = json.loads(re.search(r"var categories = (\{.*?\});?\n", html).group(1))
    assert categories == {
        "augment": {"digits": ["data/augmented/digits/preview.png"]},
        "train": {"digits lenet5 seed 0": [f"{RUN}/learning_curves.png"]},
        "evaluate": {"digits lenet5 seed 0": [f"{EVAL}/confusion.png", f"{EVAL}/errors.png"]}}
    for caption in ("Confusion matrix of", "Learning curves of this training run", "Misclassified test images",
                    "Augmentation preview of data set"):
        assert caption in html, caption

    # DVC: the committed dvc.yaml declares the history and predictions as data plots
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    run(["git", "init", "-q"], repo_copy, env)
    run([*git, "add", "-A"], repo_copy, env)
    run([*git, "commit", "-qm", "init"], repo_copy, env)
    plots = yaml.safe_load((repo_copy / "dvc.yaml").read_text())["plots"]
    ids = [next(iter(p)) for p in plots]
    targets = ["train-digits-lenet5-seed0 loss", "train-digits-lenet5-seed0 accuracy", f"{EVAL}/predictions.csv"]
    assert set(targets) <= set(ids)
    shown = json.loads(run([str(BIN / "dvc"), "plots", "show", "--json", *targets], repo_copy, env).stdout)
    assert not shown.get("errors"), shown.get("errors")
    with open(repo_copy / RUN / "history.csv", newline="") as fh:
        epochs = len(list(csv.DictReader(fh)))
    assert epochs == 2
    for target, fields in zip(targets[:2], (["train/loss", "val/loss"], ["train/acc", "val/acc"])):
        (plot,) = shown["data"][target]
        spec = plot["content"]
        assert spec["encoding"]["x"]["field"] == "epoch"
        values = spec["data"]["values"]          # one point per epoch and per column
        assert sorted((v["field"], int(v["epoch"])) for v in values) == [(f, e) for f in fields for e in range(epochs)]
    (confusion,) = shown["data"][f"dvc.yaml::{EVAL}/predictions.csv"]   # the definition (the bare file: a line)
    text = json.dumps(confusion["content"])
    assert '"rect"' in text and '"actual"' in text and '"predicted"' in text
    with open(repo_copy / EVAL / "predictions.csv", newline="") as fh:
        assert len(confusion["content"]["data"]["values"]) == len(list(csv.DictReader(fh)))
