# Semantic segmentation (cnnlab.segment): train and evaluate U-Nets on a prepared data set with masks.
# The default DAG trains the course's U-Net on the scenes at a tiny size (config "segmentation");
# the benchmark (python -m cnnlab.bench.segmentation) trains bigger.
SEGMENT = config["segmentation"]
SEGMENT_OVERRIDES = (" " + SEGMENT["overrides"].strip()) if SEGMENT["overrides"].strip() else ""


def segment_conf(wildcards):
    """The Hydra files the segmentation stages compose (conf/segment.yaml and its defaults)."""
    with open("conf/segment.yaml") as fh:
        defaults = yaml.safe_load(fh)["defaults"]
    choice = {k: v for d in defaults if isinstance(d, dict) for k, v in d.items() if "/" not in k and v}
    choice.update(data=wildcards.dataset, model=wildcards.model)
    return ["conf/segment.yaml"] + [f"conf/{group}/{name}.yaml" for group, name in sorted(choice.items())]


rule train_segmenter:
    input:
        data=rules.prepare.output,
        conf=segment_conf,
        code="src/cnnlab/stages/train_segmenter.py",
    output:
        best="models/segmentation/{dataset}/{model}/best.ckpt",
        last="models/segmentation/{dataset}/{model}/last.ckpt",
        metrics="models/segmentation/{dataset}/{model}/metrics.json",
    log:
        "logs/train_segmenter-{dataset}-{model}.log",
    benchmark:
        "logs/bench/train_segmenter-{dataset}-{model}.tsv"
    threads: 1
    shell:
        "python -m cnnlab.stages.train_segmenter data={wildcards.dataset} model={wildcards.model} "
        "threads={threads}{SEGMENT_OVERRIDES}{OVERRIDES} > {log} 2>&1"


rule evaluate_segmenter:
    input:
        ckpt=rules.train_segmenter.output.best,
        data=rules.prepare.output,
        code="src/cnnlab/stages/evaluate_segmenter.py",
    output:
        metrics="reports/segmentation/{dataset}/{model}/metrics.json",
        confusion="reports/segmentation/{dataset}/{model}/confusion.png",
        overlays="reports/segmentation/{dataset}/{model}/overlays.png",
    log:
        "logs/evaluate_segmenter-{dataset}-{model}.log",
    benchmark:
        "logs/bench/evaluate_segmenter-{dataset}-{model}.tsv"
    threads: 1
    shell:
        "python -m cnnlab.stages.evaluate_segmenter data={wildcards.dataset} model={wildcards.model} "
        "threads={threads}{SEGMENT_OVERRIDES}{OVERRIDES} > {log} 2>&1"
