rule evaluate:
    input:
        ckpt=rules.train.output.best,
        data=rules.prepare.output,
        code="src/cnnlab/stages/evaluate.py",
    output:
        metrics="reports/eval/{dataset}/{model}/seed{seed}/metrics.json",
        predictions="reports/eval/{dataset}/{model}/seed{seed}/predictions.csv",
        per_class="reports/eval/{dataset}/{model}/seed{seed}/per_class.csv",
        confusion="reports/eval/{dataset}/{model}/seed{seed}/confusion.png",
        errors="reports/eval/{dataset}/{model}/seed{seed}/errors.png",
    log:
        "logs/evaluate-{dataset}-{model}-seed{seed}.log",
    benchmark:
        "logs/bench/evaluate-{dataset}-{model}-seed{seed}.tsv"
    shell:
        "python -m cnnlab.stages.evaluate data={wildcards.dataset} model={wildcards.model} "
        "seed={wildcards.seed}{OVERRIDES} > {log} 2>&1"
