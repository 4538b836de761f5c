# Runs alone (threads: every core) so that the latency it measures on one pinned thread is not
# shared with a parallel job.
_select = Stage("select",
                lambda w: f"select.metrics={hydra_list(expand(rules.evaluate.output.metrics, zip, **model_runs()))}",
                lambda w: f"select.checkpoints={hydra_list(expand(rules.train.output.best, zip, **model_runs()))}")


rule select:
    input:
        metrics=expand(rules.evaluate.output.metrics, zip, **model_runs()),
        ckpts=expand(rules.train.output.best, zip, **model_runs()),
        **_select.deps,
    output:
        json="reports/selection/selection.json",
        table="reports/selection/selection.md",
    log:
        "logs/select.log",
    benchmark:
        "logs/bench/select.tsv"
    params:
        args=_select.args,
        sources=_select.sources,
    threads: workflow.cores
    shell:
        "python -m cnnlab.stages.select {params.args} > {log} 2>&1"
