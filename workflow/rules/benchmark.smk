_benchmark = Stage("benchmark", "data={dataset}", "model={model}",
                   lambda w: f"benchmark.seeds={hydra_list(model_seeds(w.model))}")


rule benchmark:
    input:
        ckpts=lambda w: expand(rules.train.output.best, seed=model_seeds(w.model), allow_missing=True),
        data=rules.prepare.output,
        **_benchmark.deps,
    output:
        table="reports/benchmark/{dataset}/{model}/table.md",
        metrics="reports/benchmark/{dataset}/{model}/metrics.json",
    log:
        "logs/benchmark-{dataset}-{model}.log",
    benchmark:
        "logs/bench/benchmark-{dataset}-{model}.tsv"
    params:
        args=_benchmark.args,
        sources=_benchmark.sources,
    shell:
        "python -m cnnlab.stages.benchmark {params.args} > {log} 2>&1"
