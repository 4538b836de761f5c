"""What the ecosystems' own viewers show after a real run: `snakemake --report` holds the figures
with their captions, grouped by stage, and `dvc plots show` draws the data files (learning curves,
confusion) that dvc.yaml declares as top-level plots."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import yaml
from conftest import BIN, run, run_env
from test_pipeline import SNAKEMAKE_TINY

RUN = "models/digits/lenet5/seed0"
EVAL = "reports/eval/digits/lenet5/seed0"
# prepare → train → evaluate of one model, and the augmentation preview (a folder output)
TARGETS = [f"{EVAL}/metrics.json", "data/augmented/digits"]


def test_report_holds_figures_and_dvc_plots_draw_the_data(repo_copy: Path):
    env = run_env(repo_copy)
    (repo_copy / "tiny.yaml").write_text(SNAKEMAKE_TINY)
    smk = [str(BIN / "snakemake"), *TARGETS, "--cores", "2", "--configfile", "tiny.yaml"]   # --configfile takes 1+
    run(smk, repo_copy, env)
    for name in ("history.csv", "learning_curves.png"):
        assert (repo_copy / RUN / name).is_file(), name

    # Snakemake's report: every figure of the jobs run, under its stage, with its caption
    run([*smk, "--report", "report.zip"], repo_copy, env)
    with zipfile.ZipFile(repo_copy / "report.zip") as z:
        names = z.namelist()
        text = "\n".join(z.read(n).decode("utf-8", "replace") for n in names if n.endswith((".html", ".js")))
    for fig in (f"{RUN}/learning_curves.png", f"{EVAL}/confusion.png", f"{EVAL}/errors.png",
                "data/augmented/digits/preview.png"):
        assert any(n.endswith(fig) for n in names), f"{fig} not in the report: {names}"
    assert not any("manifest" in n or n.endswith(("/train", ".ckpt")) for n in names)  # figures only
    for caption in ("Confusion matrix of", "Learning curves of this training run", "Misclassified test images"):
        assert caption in text, caption
    for category in ("train", "evaluate"):
        assert f'"{category}"' in text or f"'{category}'" in text, category

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
    for target in targets[:2]:
        (plot,) = shown["data"][target]
        spec = plot["content"]
        values = spec["data"]["values"]
        assert spec["encoding"]["x"]["field"] == "epoch" if "encoding" in spec else True
        # one point per epoch and per column (train/…, val/…)
        assert len(values) == 2 * epochs, values
    (confusion,) = shown["data"][f"{EVAL}/predictions.csv"]
    assert "rect" in json.dumps(confusion["content"]["layer"][0]["mark"])
    with open(repo_copy / EVAL / "predictions.csv", newline="") as fh:
        assert len(confusion["content"]["data"]["values"]) == len(list(csv.DictReader(fh)))
