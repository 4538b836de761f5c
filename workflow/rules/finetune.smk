_finetune = Stage("finetune", "data={dataset}", "model={model}", "finetune={strategy}", "finetune.shots={shots}",
                  "seed={seed}")


rule finetune:
    input:
        # the pretrained source checkpoint (none for the from-scratch baseline)
        source=lambda w: [] if w.strategy == "scratch" else expand(
            rules.train.output.best, dataset=TRANSFER["source"], model=w.model, seed=w.seed),
        data=rules.prepare.output,
        **_finetune.deps,
    output:
        best="models/{dataset}/{model}-ft-{strategy}/shots{shots}/seed{seed}/best.ckpt",
        metrics="models/{dataset}/{model}-ft-{strategy}/shots{shots}/seed{seed}/metrics.json",
        details="models/{dataset}/{model}-ft-{strategy}/shots{shots}/seed{seed}/details.json",
        history="models/{dataset}/{model}-ft-{strategy}/shots{shots}/seed{seed}/history.csv",
        curves=report("models/{dataset}/{model}-ft-{strategy}/shots{shots}/seed{seed}/learning_curves.png", caption="../report/learning_curves.rst", category="finetune", subcategory="{dataset} {model} {strategy} {shots} shots"),
    log:
        "logs/finetune-{dataset}-{model}-{strategy}-shots{shots}-seed{seed}.log",
    benchmark:
        "logs/bench/finetune-{dataset}-{model}-{strategy}-shots{shots}-seed{seed}.tsv"
    params:
        args=_finetune.args,
        sources=_finetune.sources,
    threads: 1
    shell:
        "python -m cnnlab.stages.finetune {params.args} threads={threads} > {log} 2>&1"


_finetune_compare = Stage("finetune_compare", "data={dataset}", lambda w: f"model={TRANSFER['model']}")


rule finetune_compare:
    input:
        runs=expand(rules.finetune.output.details, dataset=TRANSFER["target"], model=TRANSFER["model"],
                    strategy=TRANSFER["strategies"], shots=TRANSFER["shots"], seed=TRANSFER["seed"]),
        **_finetune_compare.deps,
    output:
        table="reports/finetune/{dataset}/table.md",
        comparison="reports/finetune/{dataset}/comparison.json",
    log:
        "logs/finetune_compare-{dataset}.log",
    benchmark:
        "logs/bench/finetune_compare-{dataset}.tsv"
    params:
        args=_finetune_compare.args,
        sources=_finetune_compare.sources,
    shell:
        "python -m cnnlab.stages.finetune_compare {params.args} > {log} 2>&1"
