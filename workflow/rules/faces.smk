# Faces: prepare → align_faces → (import_dlib | train_encoder) → encode_faces → calibrate →
# evaluate_faces (one report per encoder) → compare_faces (one table). The encoders compared, and
# so built, are conf/face/default.yaml's face.compare.encoders: one truth for the stages and the DAG.
import os as _os
import yaml as _yaml


def _face_conf():
    with open("conf/face/default.yaml") as fh:
        return _yaml.safe_load(fh)


FACE_CONF = _face_conf()
FACE_DATASETS = FACE_CONF["face"]["datasets"]                  # train_on → prepared data set
FACE_TRAIN_ON = {ds: key for key, ds in FACE_DATASETS.items()}  # prepared data set → train_on
FACE_IDS = FACE_DATASETS["ids"]
ALL_ENCODERS = FACE_CONF["face"]["compare"]["encoders"]         # name → scratch | pretrained | finetune
# those compared (and so built): the workflow config's face_encoders, else face.compare.only, else all
_ONLY = config.get("face_encoders") or FACE_CONF["face"]["compare"].get("only") or list(ALL_ENCODERS)
_unknown = sorted(set(_ONLY) - set(ALL_ENCODERS))
if _unknown:
    raise ValueError(f"face_encoders / face.compare.only: {_unknown} are not in face.compare.encoders "
                     f"of conf/face/default.yaml")
FACE_ENCODERS = {n: ALL_ENCODERS[n] for n in _ONLY}
ONLY = f" face.compare.only=[{','.join(FACE_ENCODERS)}]" if config.get("face_encoders") else ""


def encoder_file(name):
    """conf/encoder/<file>.yaml of an encoder name, and the strategy a `<file>_<strategy>` name adds."""
    if _os.path.isfile(f"conf/encoder/{name}.yaml"):
        return name, None
    base, _, strategy = name.rpartition("_")
    if base and _os.path.isfile(f"conf/encoder/{base}.yaml"):
        return base, strategy
    raise ValueError(f"face.compare.encoders: no conf/encoder/{name}.yaml (nor {base}.yaml + a strategy)")


def encoder_args(name):
    """Hydra overrides that select an encoder by name."""
    base, strategy = encoder_file(name)
    return f"encoder={base}" + (f" face.encoder.strategy={strategy}" if strategy else "")


def _encoder_conf(name):
    with open(f"conf/encoder/{encoder_file(name)[0]}.yaml") as fh:
        return _yaml.safe_load(fh)


PRETRAINED = [n for n, kind in ALL_ENCODERS.items() if kind == "pretrained"]  # a fine-tune may need one
TRAINED = [n for n in ALL_ENCODERS if n not in PRETRAINED]
# the fine-tuned encoders start from the pretrained one (`face.encoder.init`)
FT_INIT = {n: _encoder_conf(n)["face"]["encoder"].get("init") for n in TRAINED}


def face_conf_files(wildcards):
    """conf/config.yaml, the face and encoder groups, the groups they pull in, the default trainer."""
    with open("conf/config.yaml") as fh:
        defaults = _yaml.safe_load(fh)["defaults"]
    trainer = next(d["trainer"] for d in defaults if isinstance(d, dict) and "trainer" in d)
    pulled = [f"conf/{k.lstrip('/').split('@')[0]}/{v}.yaml" for d in FACE_CONF["defaults"] if isinstance(d, dict)
              for k, v in d.items()]
    encoders = []
    if hasattr(wildcards, "encoder"):
        base = encoder_file(wildcards.encoder)[0]
        encoders = [f"conf/encoder/{base}.yaml"] + [f"conf/encoder/{d}.yaml" for d in
                    _encoder_conf(wildcards.encoder).get("defaults", []) if isinstance(d, str) and d != "_self_"]
    return ["conf/config.yaml", "conf/face/default.yaml", f"conf/trainer/{trainer}.yaml", *pulled, *encoders]


def encoder_ckpt(name, train_on="ids"):
    """The checkpoint an encoder is used from."""
    if name in PRETRAINED:
        return f"models/faces/{name}/best.ckpt"
    return f"models/faces/{name}-{train_on}/best.ckpt"


TRAIN_ON_RE = "|".join(FACE_DATASETS)
FACE_DS_RE = "|".join(FACE_DATASETS.values())
ENCODER_RE = "|".join(ALL_ENCODERS)


rule align_faces:
    input:
        data=lambda w: expand(rules.prepare.output, dataset=w.face_ds),
        conf=face_conf_files,
        code=["src/cnnlab/stages/align_faces.py", "src/cnnlab/face/aligned_data.py", "src/cnnlab/face/preprocess.py",
              "src/cnnlab/face/align.py",
              "src/cnnlab/face/detect.py"],
    output:
        directory("data/aligned/{face_ds}"),
    log:
        "logs/align_faces-{face_ds}.log",
    benchmark:
        "logs/bench/align_faces-{face_ds}.tsv"
    wildcard_constraints:
        face_ds=FACE_DS_RE,
    params:
        train_on=lambda w: FACE_TRAIN_ON[w.face_ds],
    shell:
        "python -m cnnlab.stages.align_faces face.train_on={params.train_on}{OVERRIDES} > {log} 2>&1"


rule import_dlib:
    input:
        code=["src/cnnlab/stages/import_dlib.py", "src/cnnlab/face/dlib_resnet.py"],
    output:
        ckpt="models/faces/{encoder}/best.ckpt",
    log:
        "logs/import_dlib-{encoder}.log",
    benchmark:
        "logs/bench/import_dlib-{encoder}.tsv"
    wildcard_constraints:
        encoder="|".join(PRETRAINED) or "^$",
    params:
        args=lambda w: encoder_args(w.encoder),
    shell:
        "python -m cnnlab.stages.import_dlib {params.args}{OVERRIDES} > {log} 2>&1"


rule train_encoder:
    input:
        data=lambda w: expand(rules.align_faces.output, face_ds=FACE_DATASETS[w.train_on]),
        init=lambda w: [FT_INIT[w.encoder]] if FT_INIT.get(w.encoder) else [],
        conf=face_conf_files,
        code=["src/cnnlab/stages/train_encoder.py", "src/cnnlab/face/train.py", "src/cnnlab/face/encoder.py"],
    output:
        best="models/faces/{encoder}-{train_on}/best.ckpt",
        last="models/faces/{encoder}-{train_on}/last.ckpt",
        metrics="models/faces/{encoder}-{train_on}/metrics.json",
    log:
        "logs/train_encoder-{encoder}-{train_on}.log",
    benchmark:
        "logs/bench/train_encoder-{encoder}-{train_on}.tsv"
    wildcard_constraints:
        encoder="|".join(TRAINED) or "^$",
        train_on=TRAIN_ON_RE,
    params:
        args=lambda w: encoder_args(w.encoder),
    threads: 2
    shell:
        "python -m cnnlab.stages.train_encoder {params.args} face.train_on={wildcards.train_on} "
        "threads={threads}{OVERRIDES} > {log} 2>&1"


rule encode_faces:
    input:
        ckpt=lambda w: encoder_ckpt(w.encoder, FACE_TRAIN_ON[w.face_ds]),
        data=lambda w: expand(rules.align_faces.output, face_ds=w.face_ds),
        code="src/cnnlab/stages/encode_faces.py",
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
        args=lambda w: encoder_args(w.encoder),
        train_on=lambda w: FACE_TRAIN_ON[w.face_ds],
    shell:
        "python -m cnnlab.stages.encode_faces {params.args} face.train_on={params.train_on} "
        "gallery.root=data/aligned/{wildcards.face_ds}/{wildcards.split} "
        "gallery.name={wildcards.face_ds}-{wildcards.split}{OVERRIDES} > {log} 2>&1"


rule calibrate:
    input:
        val=expand(rules.encode_faces.output.npz, split="val", allow_missing=True),
        gallery=expand(rules.encode_faces.output.npz, split="test", allow_missing=True),
        code="src/cnnlab/stages/calibrate.py",
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
        args=lambda w: encoder_args(w.encoder),
        train_on=lambda w: FACE_TRAIN_ON[w.face_ds],
    shell:
        "python -m cnnlab.stages.calibrate {params.args} face.train_on={params.train_on}{OVERRIDES} > {log} 2>&1"


rule evaluate_faces:
    input:
        test=expand(rules.encode_faces.output.npz, face_ds=FACE_IDS, split="test", allow_missing=True),
        val=expand(rules.encode_faces.output.npz, face_ds=FACE_IDS, split="val", allow_missing=True),
        threshold=expand(rules.calibrate.output.gallery, face_ds=FACE_IDS, allow_missing=True),
        ckpt=lambda w: encoder_ckpt(w.encoder, "ids"),
        data=expand(rules.align_faces.output, face_ds=FACE_IDS),
        code=["src/cnnlab/stages/evaluate_faces.py", "src/cnnlab/face/evaluate.py"],
    output:
        metrics="reports/faces/{encoder}/metrics.json",
        report="reports/faces/{encoder}/report.md",
        roc="reports/faces/{encoder}/roc.png",
        distances="reports/faces/{encoder}/distances.png",
    log:
        "logs/evaluate_faces-{encoder}.log",
    benchmark:
        "logs/bench/evaluate_faces-{encoder}.tsv"
    wildcard_constraints:
        encoder=ENCODER_RE,
    params:
        args=lambda w: encoder_args(w.encoder),
        # the baselines depend on the split only: the first compared encoder's report carries them
        baselines=lambda w: str(w.encoder == next(iter(FACE_ENCODERS))).lower(),
    shell:
        "python -m cnnlab.stages.evaluate_faces {params.args} face.evaluate.baselines={params.baselines}"
        "{OVERRIDES} > {log} 2>&1"


rule compare_faces:
    input:
        reports=expand(rules.evaluate_faces.output.metrics, encoder=list(FACE_ENCODERS)),
        data=expand(rules.align_faces.output, face_ds=FACE_IDS),
        code=["src/cnnlab/stages/compare_faces.py", "src/cnnlab/face/compare.py"],
    output:
        table="reports/faces/comparison.md",
        metrics="reports/faces/comparison.json",
    log:
        "logs/compare_faces.log",
    benchmark:
        "logs/bench/compare_faces.tsv"
    shell:
        "python -m cnnlab.stages.compare_faces{ONLY}{OVERRIDES} > {log} 2>&1"
