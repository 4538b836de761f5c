rule select:
    input:
        metrics=expand(rules.evaluate.output.metrics, dataset=config["classify"], model=config["models"],
                       seed=config["seeds"]),
        code="src/cnnlab/stages/select.py",
    output:
        json="reports/selection/selection.json",
        table="reports/selection/selection.md",
    log:
        "logs/select.log",
    benchmark:
        "logs/bench/select.tsv"
    params:
        files=lambda wildcards, input: ",".join(input.metrics),
    shell:
        "python -m cnnlab.stages.select 'select.metrics=[{params.files}]'{OVERRIDES} > {log} 2>&1"
