rule prepare:
    input:
        raw_inputs,
        conf_files,
        "src/cnnlab/stages/prepare.py",
    output:
        directory("data/prepared/{dataset}"),
    log:
        "logs/prepare-{dataset}.log",
    benchmark:
        "logs/bench/prepare-{dataset}.tsv"
    shell:
        "python -m cnnlab.stages.prepare data={wildcards.dataset}{OVERRIDES} > {log} 2>&1"
