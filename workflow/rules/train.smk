rule train:
    input:
        data=rules.prepare.output,
        conf=conf_files,
        code="src/cnnlab/stages/train.py",
    output:
        best="models/{dataset}/{model}/seed{seed}/best.ckpt",
        last="models/{dataset}/{model}/seed{seed}/last.ckpt",
        metrics="models/{dataset}/{model}/seed{seed}/metrics.json",
    log:
        "logs/train-{dataset}-{model}-seed{seed}.log",
    benchmark:
        "logs/bench/train-{dataset}-{model}-seed{seed}.tsv"
    threads: 1
    shell:
        "python -m cnnlab.stages.train data={wildcards.dataset} model={wildcards.model} "
        "seed={wildcards.seed} threads={threads}{OVERRIDES} > {log} 2>&1"
