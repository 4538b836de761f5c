def finetune_source(wildcards):
    """The pretrained source checkpoint (none for the from-scratch baseline)."""
    if wildcards.strategy == "scratch":
        return []
    return f"models/{TRANSFER['source']}/{wildcards.model}/seed{wildcards.seed}/best.ckpt"


rule finetune:
    input:
        source=finetune_source,
        data="data/prepared/{dataset}",
        conf="conf/finetune/{strategy}.yaml",
        code="src/cnnlab/stages/finetune.py",
    output:
        best="models/{dataset}/{model}-ft-{strategy}/shots{shots}/seed{seed}/best.ckpt",
        metrics="models/{dataset}/{model}-ft-{strategy}/shots{shots}/seed{seed}/metrics.json",
    log:
        "logs/finetune-{dataset}-{model}-{strategy}-shots{shots}-seed{seed}.log",
    benchmark:
        "logs/bench/finetune-{dataset}-{model}-{strategy}-shots{shots}-seed{seed}.tsv"
    threads: 1
    shell:
        "python -m cnnlab.stages.finetune data={wildcards.dataset} model={wildcards.model} "
        "finetune={wildcards.strategy} finetune.shots={wildcards.shots} seed={wildcards.seed} "
        "threads={threads}{OVERRIDES} > {log} 2>&1"


rule finetune_compare:
    input:
        runs=expand(rules.finetune.output.metrics, dataset=TRANSFER["target"], model=TRANSFER["model"],
                    strategy=TRANSFER["strategies"], shots=TRANSFER["shots"], seed=TRANSFER["seed"]),
        code="src/cnnlab/stages/finetune_compare.py",
    output:
        table="reports/finetune/{dataset}/table.md",
        comparison="reports/finetune/{dataset}/comparison.json",
    log:
        "logs/finetune_compare-{dataset}.log",
    benchmark:
        "logs/bench/finetune_compare-{dataset}.tsv"
    shell:
        "python -m cnnlab.stages.finetune_compare data={wildcards.dataset} model={TRANSFER[model]}{OVERRIDES} > {log} 2>&1"
