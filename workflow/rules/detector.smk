# Detectors on the detection data sets (issue 17): train, evaluate, one comparison table (with issue
# 16's sliding windows, so this file is included after detect.smk).
# The default DAG trains on a small budget (config "detection.budget"); the benchmark trains longer.

import os

DETECTION = config["detection"]

wildcard_constraints:  # only conf/detector/ names, so reports/detection/<ds>/windows/ etc. stay issue 16's
    detector="|".join(sorted(os.path.basename(f)[:-5] for f in os.listdir("conf/detector") if f.endswith(".yaml"))),
DETECTOR_BUDGET = DETECTION["budget"].split()   # Hydra overrides of the default DAG's training budget

_train_detector = Stage("train_detector", "data={dataset}", "detector={detector}", "trainer.enable_progress_bar=false",
                        *DETECTOR_BUDGET, config_name="detect")
_evaluate_detector = Stage("evaluate_detector", "data={dataset}", "detector={detector}", config_name="detect")
_compare_detectors = Stage("compare_detectors", "data={dataset}",
                           lambda w: "compare.inputs=[" + ",".join(_compare_dirs(w)) + "]", config_name="detect")


def _compare_dirs(wildcards):
    """The evaluation folders compare_detectors tabulates: the sliding windows' and each detector's."""
    return [os.path.dirname(m) for m in
            [rules.evaluate_windows.output.metrics.format(dataset=wildcards.dataset),
             *expand(rules.evaluate_detector.output.metrics, dataset=wildcards.dataset, detector=DETECTION["detectors"])]]


rule train_detector:
    input:
        data=rules.prepare.output,
        **_train_detector.deps,
    output:
        best="models/detection/{dataset}/{detector}/best.ckpt",
        last="models/detection/{dataset}/{detector}/last.ckpt",
        metrics="models/detection/{dataset}/{detector}/metrics.json",
        history="models/detection/{dataset}/{detector}/history.csv",
        curves=report("models/detection/{dataset}/{detector}/learning_curves.png", caption="../report/learning_curves.rst", category="detection", subcategory="{dataset} {detector}"),
    log:
        "logs/train_detector-{dataset}-{detector}.log",
    benchmark:
        "logs/bench/train_detector-{dataset}-{detector}.tsv"
    params:
        args=_train_detector.args,
        sources=_train_detector.sources,
    threads: 1
    shell:
        "python -m cnnlab.stages.train_detector {params.args} threads={threads} > {log} 2>&1"


rule evaluate_detector:
    input:
        ckpt=rules.train_detector.output.best,
        data=rules.prepare.output,
        **_evaluate_detector.deps,
    output:
        metrics="reports/detection/{dataset}/{detector}/metrics.json",
        details="reports/detection/{dataset}/{detector}/details.json",
        pr=report("reports/detection/{dataset}/{detector}/pr.png", caption="../report/detector_pr.rst", category="detection", subcategory="{dataset} {detector}"),
        boxes=report("reports/detection/{dataset}/{detector}/boxes.png", caption="../report/detector_boxes.rst", category="detection", subcategory="{dataset} {detector}"),
    log:
        "logs/evaluate_detector-{dataset}-{detector}.log",
    benchmark:
        "logs/bench/evaluate_detector-{dataset}-{detector}.tsv"
    params:
        args=_evaluate_detector.args,
        sources=_evaluate_detector.sources,
    threads: 1
    shell:
        "python -m cnnlab.stages.evaluate_detector {params.args} threads={threads} > {log} 2>&1"


rule compare_detectors:
    input:
        windows=rules.evaluate_windows.output.metrics,  # issue 16's sliding windows (workflow/rules/detect.smk)
        metrics=lambda wildcards: expand(rules.evaluate_detector.output.metrics, dataset=wildcards.dataset,
                                         detector=DETECTION["detectors"]),
        **_compare_detectors.deps,
    output:
        table="reports/detection/{dataset}/compare/table.md",
        metrics="reports/detection/{dataset}/compare/metrics.json",
    log:
        "logs/compare_detectors-{dataset}.log",
    benchmark:
        "logs/bench/compare_detectors-{dataset}.tsv"
    params:
        args=_compare_detectors.args,
        sources=_compare_detectors.sources,
    shell:
        "python -m cnnlab.stages.compare_detectors {params.args} > {log} 2>&1"
