rule benchmark:
    input:
        ckpts=expand("models/{{dataset}}/{{model}}/seed{seed}/best.ckpt", seed=config["seeds"]),
        data=rules.prepare.output,
        conf="conf/benchmark/default.yaml",
        code="src/cnnlab/stages/benchmark.py",
    output:
        table="reports/benchmark/{dataset}/{model}/table.md",
        metrics="reports/benchmark/{dataset}/{model}/metrics.json",
    log:
        "logs/benchmark-{dataset}-{model}.log",
    benchmark:
        "logs/bench/benchmark-{dataset}-{model}.tsv"
    shell:
        "python -m cnnlab.stages.benchmark data={wildcards.dataset} model={wildcards.model} "
        "'benchmark.seeds={SEEDS}'{OVERRIDES} > {log} 2>&1"
