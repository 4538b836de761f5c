# cnnlab pipeline: `snakemake --cores N`. The same DAG is exported to dvc.yaml by
# `python -m cnnlab.dag` (a test fails when the two disagree). Rules: workflow/rules/<stage>.smk.
from cnnlab.workflow_guard import claim_workdir

# After a kill -9: clear Snakemake's stale lock when no other run is alive, and let jobs stop
# when this Snakemake dies (cnnlab.workflow_guard).
claim_workdir()

# One MLflow parent run per invocation: every stage's run nests under it (cnnlab.track).
import os as _os, time as _time
_os.environ.setdefault("CNNLAB_PIPELINE_RUN", _time.strftime("%Y%m%d-%H%M%S") + f"-{_os.getpid()}")

# `snakemake --report report.zip`: the figures of every rule, with captions, grouped by stage
report: "workflow/report/workflow.rst"

configfile: "workflow/config.yaml"
configfile: "params.yaml"   # the knobs `dvc exp run -S` turns


wildcard_constraints:
    dataset="[^/]+",
    model="[^/]+",
    seed=r"\d+",
    shots=r"\d+",


include: "workflow/rules/common.smk"
include: "workflow/rules/faces_common.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/augment.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/benchmark.smk"
include: "workflow/rules/select.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/faces.smk"
include: "workflow/rules/benchmark_faces.smk"
include: "workflow/rules/detect.smk"
include: "workflow/rules/segment.smk"
include: "workflow/rules/visualise.smk"
include: "workflow/rules/style.smk"
include: "workflow/rules/detector.smk"


rule all:
    input:
        expand(rules.evaluate.output.metrics, zip, **model_runs()),
        expand(rules.prepare.output, dataset=config["faces"]),
        expand(rules.augment.output, dataset=config["classify"]),
        rules.select.output.json,
        expand(rules.finetune_compare.output.table, dataset=TRANSFER["target"]),
        rules.compare_faces.output.table,
        expand(rules.benchmark.output.metrics, dataset=config["classify"], model=BENCH_MODELS),
        rules.benchmark_faces.output.metrics,
        expand(rules.compare_detectors.output.table, dataset=config["detection"]["datasets"]),
        expand(rules.evaluate_localiser.output.metrics, dataset=DETECT_DATASETS),
        expand(rules.evaluate_landmarks.output.metrics, dataset=DETECT_DATASETS),
        expand(rules.evaluate_windows.output.metrics, dataset=DETECT_DATASETS),
        expand(rules.evaluate_segmenter.output.metrics, dataset=SEGMENT["datasets"], model=SEGMENT["models"]),
        [f"reports/visualise/{ds}/{name}" for ds, name in VISUALISE],
        [rules.style_transfer.output.panel.format(content=c, style=s) for c, s in STYLE_PAIRS],
