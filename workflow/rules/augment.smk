rule augment:
    input:
        data=rules.prepare.output,
        conf=conf_files,
        code="src/cnnlab/stages/augment.py",
    output:
        directory("data/augmented/{dataset}"),
    log:
        "logs/augment-{dataset}.log",
    benchmark:
        "logs/bench/augment-{dataset}.tsv"
    shell:
        "python -m cnnlab.stages.augment data={wildcards.dataset}{OVERRIDES} > {log} 2>&1"
