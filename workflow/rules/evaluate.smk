_evaluate = Stage("evaluate", "data={dataset}", "model={model}", "seed={seed}")


rule evaluate:
    input:
        ckpt=rules.train.output.best,
        data=rules.prepare.output,
        **_evaluate.deps,
    output:
        metrics="reports/eval/{dataset}/{model}/seed{seed}/metrics.json",
        predictions="reports/eval/{dataset}/{model}/seed{seed}/predictions.csv",
        per_class="reports/eval/{dataset}/{model}/seed{seed}/per_class.csv",
        confusion=report("reports/eval/{dataset}/{model}/seed{seed}/confusion.png", caption="../report/confusion.rst", category="evaluate", subcategory="{dataset} {model} seed {seed}"),
        errors=report("reports/eval/{dataset}/{model}/seed{seed}/errors.png", caption="../report/errors.rst", category="evaluate", subcategory="{dataset} {model} seed {seed}"),
    log:
        "logs/evaluate-{dataset}-{model}-seed{seed}.log",
    benchmark:
        "logs/bench/evaluate-{dataset}-{model}-seed{seed}.tsv"
    params:
        args=_evaluate.args,
        sources=_evaluate.sources,
    shell:
        "python -m cnnlab.stages.evaluate {params.args} > {log} 2>&1"
