_augment = Stage("augment", "data={dataset}")


rule augment:
    input:
        data=rules.prepare.output,
        **_augment.deps,
    output:
        report(directory("data/augmented/{dataset}"), patterns=["{name,[^/]+}.png"], caption="../report/augment.rst",
               category="augment", subcategory="{dataset}"),
    log:
        "logs/augment-{dataset}.log",
    benchmark:
        "logs/bench/augment-{dataset}.tsv"
    params:
        args=_augment.args,
        sources=_augment.sources,
    shell:
        "python -m cnnlab.stages.augment {params.args} > {log} 2>&1"
