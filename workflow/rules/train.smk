# resume=true: a job interrupted (kill, crash) continues from its .seed<n>.partial/last.ckpt on
# the next run; with no partial run it trains from scratch.
_train = Stage("train", "data={dataset}", "model={model}", "seed={seed}", train_overrides, "resume=true")


rule train:
    input:
        data=rules.prepare.output,
        **_train.deps,
    output:
        best="models/{dataset}/{model}/seed{seed}/best.ckpt",
        last="models/{dataset}/{model}/seed{seed}/last.ckpt",
        metrics="models/{dataset}/{model}/seed{seed}/metrics.json",
        history="models/{dataset}/{model}/seed{seed}/history.csv",
        curves=report("models/{dataset}/{model}/seed{seed}/learning_curves.png", caption="../report/learning_curves.rst", category="train", subcategory="{dataset} {model} seed {seed}"),
    log:
        "logs/train-{dataset}-{model}-seed{seed}.log",
    benchmark:
        "logs/bench/train-{dataset}-{model}-seed{seed}.tsv"
    params:
        args=_train.args,
        sources=_train.sources,
    threads: 1
    shell:
        "python -m cnnlab.stages.train {params.args} threads={threads} > {log} 2>&1"
