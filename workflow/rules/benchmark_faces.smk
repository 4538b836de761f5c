# Ensembles × multi-crop for the face encoder (issue 7); helpers in faces_common.smk.


use rule train_encoder as train_encoder_seed with:
    input:
        data=lambda w: expand(rules.align_faces.output.aligned, face_ds=FACE_DATASETS[w.train_on]),
        init=lambda w: [FT_INIT[w.encoder]] if FT_INIT.get(w.encoder) else [],
        **_train_enc_seed.deps,
    output:
        best="models/faces/{encoder}-{train_on}-seed{seed}/best.ckpt",
        last="models/faces/{encoder}-{train_on}-seed{seed}/last.ckpt",
        metrics="models/faces/{encoder}-{train_on}-seed{seed}/metrics.json",
        details="models/faces/{encoder}-{train_on}-seed{seed}/details.json",
        history="models/faces/{encoder}-{train_on}-seed{seed}/history.csv",
        curves=report("models/faces/{encoder}-{train_on}-seed{seed}/learning_curves.png", caption="../report/learning_curves.rst", category="faces", subcategory="{encoder} seed {seed} (training)"),
    log:
        "logs/train_encoder-{encoder}-{train_on}-seed{seed}.log",
    benchmark:
        "logs/bench/train_encoder-{encoder}-{train_on}-seed{seed}.tsv"
    params:
        args=_train_enc_seed.args,
        sources=_train_enc_seed.sources,


rule benchmark_faces:
    input:
        ckpts=face_seed_ckpts,
        data=expand(rules.align_faces.output.aligned, face_ds=FACE_IDS),
        **_bench_faces.deps,
    output:
        table=f"reports/benchmark/{FACE_IDS}/table.md",
        metrics=f"reports/benchmark/{FACE_IDS}/metrics.json",
    log:
        "logs/benchmark_faces.log",
    benchmark:
        "logs/bench/benchmark_faces.tsv"
    params:
        args=_bench_faces.args,
        sources=_bench_faces.sources,
    threads: workflow.cores     # measures latency: alone, like select
    shell:
        "python -m cnnlab.stages.benchmark_faces {params.args} > {log} 2>&1"
