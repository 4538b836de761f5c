# Faces: prepare → align_faces → (import_dlib | train_encoder) → encode_faces → calibrate →
# evaluate_faces (one report per encoder) → compare_faces (one table). Helpers: faces_common.smk.


rule align_faces:
    input:
        data=lambda w: expand(rules.prepare.output, dataset=w.face_ds),
        **_align.deps,
    output:
        aligned=directory("data/aligned/{face_ds}"),
        timings="reports/faces/alignment/{face_ds}/metrics.json",
    log:
        "logs/align_faces-{face_ds}.log",
    benchmark:
        "logs/bench/align_faces-{face_ds}.tsv"
    wildcard_constraints:
        face_ds=FACE_DS_RE,
    params:
        args=_align.args,
        sources=_align.sources,
    shell:
        "python -m cnnlab.stages.align_faces {params.args} > {log} 2>&1"


rule import_dlib:
    input:
        **_import.deps,
    output:
        ckpt="models/faces/{encoder}/best.ckpt",
    log:
        "logs/import_dlib-{encoder}.log",
    benchmark:
        "logs/bench/import_dlib-{encoder}.tsv"
    wildcard_constraints:
        encoder="|".join(PRETRAINED) or "^$",
    params:
        args=_import.args,
        sources=_import.sources,
    shell:
        "python -m cnnlab.stages.import_dlib {params.args} > {log} 2>&1"


rule train_encoder:
    input:
        data=lambda w: expand(rules.align_faces.output.aligned, face_ds=FACE_DATASETS[w.train_on]),
        init=lambda w: [FT_INIT[w.encoder]] if FT_INIT.get(w.encoder) else [],
        **_train_enc.deps,
    output:
        best="models/faces/{encoder}-{train_on}/best.ckpt",
        last="models/faces/{encoder}-{train_on}/last.ckpt",
        metrics="models/faces/{encoder}-{train_on}/metrics.json",
        details="models/faces/{encoder}-{train_on}/details.json",
        history="models/faces/{encoder}-{train_on}/history.csv",
        curves=report("models/faces/{encoder}-{train_on}/learning_curves.png", caption="../report/learning_curves.rst", category="faces", subcategory="{encoder} (training)"),
    log:
        "logs/train_encoder-{encoder}-{train_on}.log",
    benchmark:
        "logs/bench/train_encoder-{encoder}-{train_on}.tsv"
    wildcard_constraints:
        encoder="|".join(TRAINED) or "^$",
        train_on=TRAIN_ON_RE,
    params:
        args=_train_enc.args,
        sources=_train_enc.sources,
    threads: 2
    shell:
        "python -m cnnlab.stages.train_encoder {params.args} threads={threads} > {log} 2>&1"


rule encode_faces:
    input:
        ckpt=lambda w: encoder_ckpt(w.encoder, FACE_TRAIN_ON[w.face_ds]),
        data=lambda w: expand(rules.align_faces.output.aligned, face_ds=w.face_ds),
        **_encode.deps,
    output:
        npz="data/encodings/{encoder}/{face_ds}-{split}.npz",
    log:
        "logs/encode_faces-{encoder}-{face_ds}-{split}.log",
    benchmark:
        "logs/bench/encode_faces-{encoder}-{face_ds}-{split}.tsv"
    wildcard_constraints:
        encoder=ENCODER_RE,
        face_ds=FACE_DS_RE,
        split="train|val|test",
    params:
        args=_encode.args,
        sources=_encode.sources,
    shell:
        "python -m cnnlab.stages.encode_faces {params.args} > {log} 2>&1"


rule calibrate:
    input:
        val=expand(rules.encode_faces.output.npz, split="val", allow_missing=True),
        gallery=expand(rules.encode_faces.output.npz, split="test", allow_missing=True),
        **_calibrate.deps,
    output:
        val="data/encodings/{encoder}/{face_ds}-val.threshold.json",
        gallery="data/encodings/{encoder}/{face_ds}-test.threshold.json",
    log:
        "logs/calibrate-{encoder}-{face_ds}.log",
    benchmark:
        "logs/bench/calibrate-{encoder}-{face_ds}.tsv"
    wildcard_constraints:
        encoder=ENCODER_RE,
        face_ds=FACE_DS_RE,
    params:
        args=_calibrate.args,
        sources=_calibrate.sources,
    shell:
        "python -m cnnlab.stages.calibrate {params.args} > {log} 2>&1"


rule evaluate_faces:
    input:
        test=expand(rules.encode_faces.output.npz, face_ds=FACE_IDS, split="test", allow_missing=True),
        val=expand(rules.encode_faces.output.npz, face_ds=FACE_IDS, split="val", allow_missing=True),
        threshold=expand(rules.calibrate.output.gallery, face_ds=FACE_IDS, allow_missing=True),
        ckpt=lambda w: encoder_ckpt(w.encoder, "ids"),
        data=expand(rules.align_faces.output.aligned, face_ds=FACE_IDS),
        **_eval_faces.deps,
    output:
        metrics="reports/faces/{encoder}/metrics.json",
        details="reports/faces/{encoder}/details.json",
        report="reports/faces/{encoder}/report.md",
        roc_csv="reports/faces/{encoder}/roc.csv",
        roc=report("reports/faces/{encoder}/roc.png", caption="../report/face_roc.rst", category="faces", subcategory="{encoder}"),
        distances=report("reports/faces/{encoder}/distances.png", caption="../report/face_distances.rst", category="faces", subcategory="{encoder}"),
    log:
        "logs/evaluate_faces-{encoder}.log",
    benchmark:
        "logs/bench/evaluate_faces-{encoder}.tsv"
    wildcard_constraints:
        encoder=ENCODER_RE,
    params:
        args=_eval_faces.args,
        sources=_eval_faces.sources,
    shell:
        "python -m cnnlab.stages.evaluate_faces {params.args} > {log} 2>&1"


rule compare_faces:
    input:
        reports=expand(rules.evaluate_faces.output.details, encoder=list(FACE_ENCODERS)),
        data=expand(rules.align_faces.output.aligned, face_ds=FACE_IDS),
        timings=expand(rules.align_faces.output.timings, face_ds=FACE_IDS),
        **_compare.deps,
    output:
        table="reports/faces/comparison.md",
        metrics="reports/faces/comparison.json",
    log:
        "logs/compare_faces.log",
    benchmark:
        "logs/bench/compare_faces.tsv"
    params:
        args=_compare.args,
        sources=_compare.sources,
    shell:
        "python -m cnnlab.stages.compare_faces {params.args} > {log} 2>&1"
