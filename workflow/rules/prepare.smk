_prepare = Stage("prepare", "data={dataset}")


rule prepare:
    input:
        raw=by_content(raw_inputs),
        **_prepare.deps,
    output:
        directory("data/prepared/{dataset}"),
    log:
        "logs/prepare-{dataset}.log",
    benchmark:
        "logs/bench/prepare-{dataset}.tsv"
    params:
        args=_prepare.args,
        sources=_prepare.sources,
        raw=lambda w: workflow_io.digest(raw_inputs(w)),   # the user's images, by content
    shell:
        "python -m cnnlab.stages.prepare {params.args} > {log} 2>&1"
