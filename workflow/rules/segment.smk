# Semantic segmentation (cnnlab.segment): train and evaluate U-Nets on a prepared data set with masks.
# The default DAG trains the course's U-Net on the scenes at a tiny size (config "segmentation");
# the benchmark (python -m cnnlab.bench.segmentation) trains bigger.
SEGMENT = config["segmentation"]
SEGMENT_OVERRIDES = SEGMENT["overrides"].split()

_train_segmenter = Stage("train_segmenter", "data={dataset}", "model={model}", *SEGMENT_OVERRIDES, config_name="segment")
_evaluate_segmenter = Stage("evaluate_segmenter", "data={dataset}", "model={model}", *SEGMENT_OVERRIDES,
                            config_name="segment")


rule train_segmenter:
    input:
        data=rules.prepare.output,
        **_train_segmenter.deps,
    output:
        best="models/segmentation/{dataset}/{model}/best.ckpt",
        last="models/segmentation/{dataset}/{model}/last.ckpt",
        metrics="models/segmentation/{dataset}/{model}/metrics.json",
        history="models/segmentation/{dataset}/{model}/history.csv",
        curves=report("models/segmentation/{dataset}/{model}/learning_curves.png", caption="../report/learning_curves.rst", category="segmentation", subcategory="{dataset} {model}"),
    log:
        "logs/train_segmenter-{dataset}-{model}.log",
    benchmark:
        "logs/bench/train_segmenter-{dataset}-{model}.tsv"
    params:
        args=_train_segmenter.args,
        sources=_train_segmenter.sources,
    threads: 1
    shell:
        "python -m cnnlab.stages.train_segmenter {params.args} threads={threads} > {log} 2>&1"


rule evaluate_segmenter:
    input:
        ckpt=rules.train_segmenter.output.best,
        data=rules.prepare.output,
        **_evaluate_segmenter.deps,
    output:
        metrics="reports/segmentation/{dataset}/{model}/metrics.json",
        details="reports/segmentation/{dataset}/{model}/details.json",
        confusion=report("reports/segmentation/{dataset}/{model}/confusion.png", caption="../report/segment_confusion.rst", category="segmentation", subcategory="{dataset} {model}"),
        overlays=report("reports/segmentation/{dataset}/{model}/overlays.png", caption="../report/segment_overlays.rst", category="segmentation", subcategory="{dataset} {model}"),
    log:
        "logs/evaluate_segmenter-{dataset}-{model}.log",
    benchmark:
        "logs/bench/evaluate_segmenter-{dataset}-{model}.tsv"
    params:
        args=_evaluate_segmenter.args,
        sources=_evaluate_segmenter.sources,
    threads: 1
    shell:
        "python -m cnnlab.stages.evaluate_segmenter {params.args} threads={threads} > {log} 2>&1"
