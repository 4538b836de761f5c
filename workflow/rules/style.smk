# Neural style transfer: one small run in the default DAG (128 px, 40 Adam steps, the
# random-weight multi-scale feature network: no download). `cnnlab style` for full-size runs.
STYLE_PAIRS = [("chelsea", "flower")]
STYLE_ARGS = ["style.size=128", "style.steps=40", "style.lr=0.03", "style.frame_every=10"]

_style = Stage("style_transfer", "style.content={content}", "style.style={style}", *STYLE_ARGS, config_name="style")


rule style_transfer:
    input:
        **_style.deps,
    output:
        panel=report("reports/style/{content}__{style}.png", caption="../report/style_panel.rst", category="style", subcategory="{content} in the style of {style}"),
        result=report("reports/style/{content}__{style}.result.png", caption="../report/style_result.rst", category="style", subcategory="{content} in the style of {style}"),
        losses=report("reports/style/{content}__{style}.losses.png", caption="../report/style_losses.rst", category="style", subcategory="{content} in the style of {style}"),
        frames=report("reports/style/{content}__{style}.frames.png", caption="../report/style_frames.rst", category="style", subcategory="{content} in the style of {style}"),
        json="reports/style/{content}__{style}.json",
    log:
        "logs/style_transfer-{content}-{style}.log",
    benchmark:
        "logs/bench/style_transfer-{content}-{style}.tsv"
    wildcard_constraints:
        content="[A-Za-z0-9_]+",
        style="[A-Za-z0-9_]+",
    params:
        args=_style.args,
        sources=_style.sources,
    threads: 1
    shell:
        "python -m cnnlab.stages.style_transfer {params.args} threads={threads} > {log} 2>&1"
