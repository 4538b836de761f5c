# What the units learn: galleries of the top-9 patches per unit for the pipeline's trained
# networks: the digits classifier (first model, first seed) and the default face encoder.
VISUALISE = {
    ("digits", f"{config['models'][0]}-seed{config['seeds'][0]}"): dict(
        ckpt=expand(rules.train.output.best, dataset="digits", model=config["models"][0], seed=config["seeds"][0]),
        data=expand(rules.prepare.output, dataset="digits"), split="/test"),
    (FACE_IDS, f"{next(iter(FACE_ENCODERS))}-ids"): dict(
        ckpt=[encoder_ckpt(next(iter(FACE_ENCODERS)), "ids")],
        data=expand(rules.align_faces.output, face_ds=FACE_IDS), split=""),
}


rule visualise:
    input:
        ckpt=lambda w: VISUALISE[(w.vds, w.vmodel)]["ckpt"],
        data=lambda w: VISUALISE[(w.vds, w.vmodel)]["data"],
        conf=["conf/visualise.yaml", "conf/debug/tiny.yaml"],
        code=["src/cnnlab/stages/visualise.py", "src/cnnlab/inside/run.py", "src/cnnlab/inside/units.py",
              "src/cnnlab/inside/receptive.py", "src/cnnlab/inside/gallery.py"],
    output:
        directory("reports/visualise/{vds}/{vmodel}"),
    log:
        "logs/visualise-{vds}-{vmodel}.log",
    benchmark:
        "logs/bench/visualise-{vds}-{vmodel}.tsv"
    wildcard_constraints:
        vds="|".join(sorted({k[0] for k in VISUALISE})),
        vmodel="|".join(sorted({k[1] for k in VISUALISE})),
    params:
        data=lambda w, input: input.data[0] + VISUALISE[(w.vds, w.vmodel)]["split"],
    threads: 1
    shell:
        "python -m cnnlab.stages.visualise visualise.model={input.ckpt} visualise.data={params.data} "
        "visualise.dataset={wildcards.vds} visualise.name={wildcards.vmodel} threads={threads}{OVERRIDES} > {log} 2>&1"
