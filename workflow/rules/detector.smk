# Detectors on the detection data sets (issue 17): train, evaluate, one comparison table (with issue
# 16's sliding windows, so this file is included after detect.smk).
# The default DAG trains on a small budget (config "detection.budget"); the benchmark trains longer.

import os

DETECTION = config["detection"]

wildcard_constraints:  # only conf/detector/ names, so reports/detection/<ds>/windows/ etc. stay issue 16's
    detector="|".join(sorted(os.path.basename(f)[:-5] for f in os.listdir("conf/detector") if f.endswith(".yaml"))),
DETECTOR_BUDGET = (" " + DETECTION["budget"].strip()) if DETECTION["budget"].strip() else ""


def detect_conf_files(wildcards):
    """The Hydra files the detection stages compose (conf/detect.yaml and its chosen groups)."""
    with open("conf/detect.yaml") as fh:
        defaults = yaml.safe_load(fh)["defaults"]
    choice = {k: v for d in defaults if isinstance(d, dict) for k, v in d.items() if "/" not in k and v}
    choice["data"] = wildcards.dataset
    if hasattr(wildcards, "detector"):
        choice["detector"] = wildcards.detector
    return ["conf/detect.yaml"] + [f"conf/{group}/{name}.yaml" for group, name in sorted(choice.items())]


rule train_detector:
    input:
        data=rules.prepare.output,
        conf=detect_conf_files,
        code="src/cnnlab/stages/train_detector.py",
    output:
        best="models/detection/{dataset}/{detector}/best.ckpt",
        last="models/detection/{dataset}/{detector}/last.ckpt",
        metrics="models/detection/{dataset}/{detector}/metrics.json",
    log:
        "logs/train_detector-{dataset}-{detector}.log",
    benchmark:
        "logs/bench/train_detector-{dataset}-{detector}.tsv"
    threads: 1
    shell:
        "python -m cnnlab.stages.train_detector data={wildcards.dataset} detector={wildcards.detector} "
        "threads={threads} trainer.enable_progress_bar=false{DETECTOR_BUDGET}{OVERRIDES} > {log} 2>&1"


rule evaluate_detector:
    input:
        ckpt=rules.train_detector.output.best,
        data=rules.prepare.output,
        code="src/cnnlab/stages/evaluate_detector.py",
    output:
        metrics="reports/detection/{dataset}/{detector}/metrics.json",
        pr="reports/detection/{dataset}/{detector}/pr.png",
        boxes="reports/detection/{dataset}/{detector}/boxes.png",
    log:
        "logs/evaluate_detector-{dataset}-{detector}.log",
    benchmark:
        "logs/bench/evaluate_detector-{dataset}-{detector}.tsv"
    threads: 1
    shell:
        "python -m cnnlab.stages.evaluate_detector data={wildcards.dataset} detector={wildcards.detector} "
        "threads={threads}{OVERRIDES} > {log} 2>&1"


rule compare_detectors:
    input:
        windows=rules.evaluate_windows.output.metrics,  # issue 16's sliding windows (workflow/rules/detect.smk)
        metrics=lambda wildcards: expand(rules.evaluate_detector.output.metrics, dataset=wildcards.dataset,
                                         detector=DETECTION["detectors"]),
        code="src/cnnlab/stages/compare_detectors.py",
    output:
        table="reports/detection/{dataset}/compare/table.md",
        metrics="reports/detection/{dataset}/compare/metrics.json",
    log:
        "logs/compare_detectors-{dataset}.log",
    benchmark:
        "logs/bench/compare_detectors-{dataset}.tsv"
    params:
        dirs=lambda wildcards, input: ",".join(os.path.dirname(m) for m in [input.windows, *input.metrics]),
    shell:
        "python -m cnnlab.stages.compare_detectors data={wildcards.dataset} "
        "'compare.inputs=[{params.dirs}]'{OVERRIDES} > {log} 2>&1"
