# What the units learn: galleries of the top-9 patches per unit for the pipeline's trained
# networks: the digits classifier (first model, first seed) and the default face encoder.
VISUALISE = {
    ("digits", f"{config['models'][0]}-seed{config['seeds'][0]}"): dict(
        ckpt=expand(rules.train.output.best, dataset="digits", model=config["models"][0], seed=config["seeds"][0]),
        data=expand(rules.prepare.output, dataset="digits"), split="/test"),
    (FACE_IDS, f"{next(iter(FACE_ENCODERS))}-ids"): dict(
        ckpt=[encoder_ckpt(next(iter(FACE_ENCODERS)), "ids")],
        data=expand(rules.align_faces.output.aligned, face_ds=FACE_IDS), split=""),
}


def _visualise_data(w):
    return VISUALISE[(w.vds, w.vmodel)]["data"][0] + VISUALISE[(w.vds, w.vmodel)]["split"]


_visualise = Stage("visualise", lambda w: f"visualise.model={VISUALISE[(w.vds, w.vmodel)]['ckpt'][0]}",
                   lambda w: f"visualise.data={_visualise_data(w)}", "visualise.dataset={vds}",
                   "visualise.name={vmodel}", config_name="visualise")


rule visualise:
    input:
        ckpt=lambda w: VISUALISE[(w.vds, w.vmodel)]["ckpt"],
        data=lambda w: VISUALISE[(w.vds, w.vmodel)]["data"],
        **_visualise.deps,
    output:
        report(directory("reports/visualise/{vds}/{vmodel}"), patterns=["{layer,[^/]+}.png"],
               caption="../report/visualise.rst", category="visualise", subcategory="{vds} {vmodel}"),
    log:
        "logs/visualise-{vds}-{vmodel}.log",
    benchmark:
        "logs/bench/visualise-{vds}-{vmodel}.tsv"
    wildcard_constraints:
        vds="|".join(sorted({k[0] for k in VISUALISE})),
        vmodel="|".join(sorted({k[1] for k in VISUALISE})),
    params:
        args=_visualise.args,
        sources=_visualise.sources,
    threads: 1
    shell:
        "python -m cnnlab.stages.visualise {params.args} threads={threads} > {log} 2>&1"
