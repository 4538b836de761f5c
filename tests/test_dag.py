"""One DAG, two tools: dvc.yaml must be exactly what the Snakefile's DAG exports."""

from __future__ import annotations

import re
import sys

import yaml
from conftest import REPO, run, run_env

from cnnlab.dag import parse_dry_run, render, snakemake_jobs, to_dvc


def test_committed_dvc_yaml_agrees_with_snakefile(tmp_path):
    res = run([sys.executable, "-m", "cnnlab.dag", "--check"], REPO, run_env(tmp_path), check=False)
    assert res.returncode == 0, res.stderr


def test_every_snakemake_job_is_a_dvc_stage_with_same_cmd_deps_outs():
    jobs = snakemake_jobs(cwd=REPO)
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert {j.stage_name for j in jobs} == set(stages)
    for job in jobs:
        st = stages[job.stage_name]
        outs = [o if isinstance(o, str) else next(iter(o)) for o in
                st.get("outs", []) + st.get("metrics", []) + st.get("plots", [])]
        assert st["cmd"] == job.shell
        assert sorted(st["deps"]) == sorted(job.input)
        assert sorted(outs) == sorted(job.output)
        assert job.log and job.benchmark, f"rule {job.rule} needs log: and benchmark:"


def test_check_fails_when_the_two_disagree(tmp_path):
    edited = tmp_path / "dvc.yaml"
    text = (REPO / "dvc.yaml").read_text().replace("seed=0", "seed=1", 1)
    edited.write_text(text)
    res = run([sys.executable, "-m", "cnnlab.dag", "--check", "-o", str(edited)], REPO, run_env(tmp_path), check=False)
    assert res.returncode == 1 and "differs" in res.stderr


def test_parse_dry_run_reads_fields():
    text = """
rule train:
    input: a/b, c.yaml
    output: m/best.ckpt, m/metrics.json
    log: logs/t.log
    jobid: 2
    benchmark: logs/bench/t.tsv
    wildcards: dataset=digits, seed=3
Shell command: python -m x seed=3 > logs/t.log 2>&1

localrule all:
    input: m/metrics.json
Shell command: None
"""
    (job,) = parse_dry_run(text)
    assert job.stage_name == "train-digits-seed3"
    assert job.input == ["a/b", "c.yaml"] and job.shell.startswith("python -m x")
    dvc = yaml.safe_load(render(to_dvc([job])))["stages"]["train-digits-seed3"]
    assert dvc["outs"] == ["m/best.ckpt"] and dvc["metrics"] == [{"m/metrics.json": {"cache": False}}]


def test_timed_outputs_are_not_cached_and_params_are_declared():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    sel = stages["select"]
    assert {"reports/selection/selection.md": {"cache": False}} in sel["outs"]
    assert "models/digits/lenet5/seed0/best.ckpt" in stages["train-digits-lenet5-seed0"]["outs"]
    train = stages["train-digits-lenet5-seed0"]
    assert "${train.lenet5.lr}" in train["cmd"] and "train.lenet5.lr" in train["params"]
    # alignment timings live in a metrics file, beside (not inside) the cached aligned folder
    align = stages["align_faces-orl_faces_ids"]
    assert align["outs"] == ["data/aligned/orl_faces_ids"]
    assert {"reports/faces/alignment/orl_faces_ids/metrics.json": {"cache": False}} in align["metrics"]
    # the detectors' comparison table lists ms / image: git's, not DVC's cache (a rerun changes it)
    assert {"reports/detection/scenes/compare/table.md": {"cache": False}} in stages["compare_detectors-scenes"]["outs"]


def _output_patterns() -> list[str]:
    """The quoted path patterns of every rule's `output:` block."""
    pats = []
    for smk in sorted((REPO / "workflow/rules").glob("*.smk")):
        for block in re.findall(r"^    output:\n((?:        .*\n)+)", smk.read_text(), re.M):
            # report(path, caption=..., category=..., subcategory=..., patterns=[...]): the path only
            block = re.sub(r'\b(?:caption|category|subcategory)=f?"[^"]*"|patterns=\["[^"]*"\]', "", block)
            pats += re.findall(r'f?"([^"]+)"', block)
    return pats


def test_no_output_path_pattern_is_written_twice():
    """Rules chain through rules.<name>.output: an output pattern appears once in the repository."""
    pats = _output_patterns()
    assert len(pats) > 20 and len(set(pats)) == len(pats)
    texts = [p.read_text() for p in [REPO / "Snakefile", *(REPO / "workflow").rglob("*.smk"),
                                     *(REPO / "src/cnnlab").rglob("*.py")]]
    for pat in pats:
        assert sum(t.count(f'"{pat}"') for t in texts) == 1, f"{pat} is written more than once"


def test_stage_deps_are_the_import_closure_and_the_composed_files():
    from cnnlab.workflow_io import stage_deps

    train = stage_deps("train", ["data=digits", "model=lenet5"], relative_to=REPO, conf=REPO / "conf")
    assert "src/cnnlab/models/lenet.py" in train["code"] and "src/cnnlab/tasks/fit.py" in train["code"]
    assert "src/cnnlab/models/resnet.py" not in train["code"] and not [f for f in train["code"] if "/face/" in f]
    assert "conf/model/lenet5.yaml" in train["conf"] and "conf/face/default.yaml" not in train["conf"]
    faces = stage_deps("train_encoder", ["encoder=dlib_resnet_ft"], config_name="faces", relative_to=REPO,
                       conf=REPO / "conf")
    # nested defaults (encoder → dlib_resnet, face → /augment@face.augment) come from Hydra itself
    assert {"conf/encoder/dlib_resnet_ft.yaml", "conf/encoder/dlib_resnet.yaml", "conf/augment/faces.yaml",
            "conf/faces.yaml"} <= set(faces["conf"])
    assert "src/cnnlab/models/lenet.py" not in faces["code"] and "conf/config.yaml" not in faces["conf"]


def test_data_files_are_dvc_plots_and_figures_are_in_the_report():
    """Every training task's history.csv is a learning-curve plot (x = epoch), every predictions.csv a
    confusion plot, every roc.csv a ROC plot; every png output is in Snakemake's report with a caption."""
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    plots = {next(iter(p)): next(iter(p.values())) for p in dvc["plots"]}
    outs = [o if isinstance(o, str) else next(iter(o)) for st in dvc["stages"].values() for o in st.get("outs", [])]
    histories = [o for o in outs if o.endswith("/history.csv")]
    trainings = [n for n in dvc["stages"] if n.startswith(("train", "finetune-"))]
    assert len(histories) == len(trainings) >= 15
    drawn = {f for p in plots.values() if isinstance(p.get("y"), dict) for f in p["y"]}
    assert set(histories) == drawn
    for p in plots.values():
        if isinstance(p.get("y"), dict):
            assert p["x"] == "epoch" and all(c.startswith(("train/", "val/")) for cs in p["y"].values() for c in cs)
    predictions = [o for o in outs if o.endswith("/predictions.csv")]
    assert predictions and all(plots[o] | {"title": None} == {"template": "confusion", "x": "actual", "y": "predicted",
                                                               "title": None, "x_label": "true class",
                                                               "y_label": "predicted class"} for o in predictions)
    rocs = [o for o in outs if o.endswith("/roc.csv")]
    assert rocs and all(plots[o]["x"] == "far" and plots[o]["y"] == "tar" for o in rocs)
    uncached = [next(iter(o)) for st in dvc["stages"].values() for o in st.get("outs", []) if isinstance(o, dict)]
    assert not set(rocs + histories + predictions) & set(uncached)   # cached: `dvc plots diff` reads old revisions
    # figures: each png output pattern of the rules is wrapped in report() with an existing caption
    for smk in sorted((REPO / "workflow/rules").glob("*.smk")):
        for block in re.findall(r"^    output:\n((?:        .*\n)+)", smk.read_text(), re.M):
            for line in block.splitlines():
                if '.png"' in line:
                    assert "report(" in line, f"{smk.name}: {line.strip()} is not in the report"
            for caption in re.findall(r'caption="([^"]+)"', block):
                assert (smk.parent / caption).is_file(), caption
