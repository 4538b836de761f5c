# Face verification and recognition: train_encoder → encode_faces → calibrate → evaluate_faces.
# Names (data sets, encoder) come from conf/face/default.yaml, so the paths here match the stages'.
import yaml as _yaml


def _face_conf():
    with open("conf/face/default.yaml") as fh:
        return _yaml.safe_load(fh)


FACE_CONF = _face_conf()
FACE_DATASETS = FACE_CONF["face"]["datasets"]                  # train_on → prepared data set
FACE_TRAIN_ON = {ds: key for key, ds in FACE_DATASETS.items()}  # prepared data set → train_on
FACE_IDS = FACE_DATASETS["ids"]
FACE_ENCODER = FACE_CONF["face"]["encoder"]["name"]


def _face_group():
    """`+face=default` until conf/config.yaml lists the face group among its defaults."""
    with open("conf/config.yaml") as fh:
        defaults = _yaml.safe_load(fh)["defaults"]
    return "" if any(isinstance(d, dict) and "face" in d for d in defaults) else " +face=default"


def face_conf_files(wildcards):
    """conf/config.yaml, the face group and the groups it pulls in, and the default trainer."""
    with open("conf/config.yaml") as fh:
        defaults = _yaml.safe_load(fh)["defaults"]
    trainer = next(d["trainer"] for d in defaults if isinstance(d, dict) and "trainer" in d)
    pulled = [f"conf/{k.lstrip('/').split('@')[0]}/{v}.yaml" for d in FACE_CONF["defaults"] if isinstance(d, dict)
              for k, v in d.items()]
    return ["conf/config.yaml", "conf/face/default.yaml", f"conf/trainer/{trainer}.yaml", *pulled]


FACE = _face_group()
TRAIN_ON_RE = "|".join(FACE_DATASETS)
FACE_DS_RE = "|".join(FACE_DATASETS.values())


rule train_encoder:
    input:
        data=lambda w: expand(rules.prepare.output, dataset=FACE_DATASETS[w.train_on]),
        conf=face_conf_files,
        code=["src/cnnlab/stages/train_encoder.py", "src/cnnlab/face/train.py"],
    output:
        best=f"models/faces/{FACE_ENCODER}-{{train_on}}/best.ckpt",
        last=f"models/faces/{FACE_ENCODER}-{{train_on}}/last.ckpt",
        metrics=f"models/faces/{FACE_ENCODER}-{{train_on}}/metrics.json",
    log:
        "logs/train_encoder-{train_on}.log",
    benchmark:
        "logs/bench/train_encoder-{train_on}.tsv"
    wildcard_constraints:
        train_on=TRAIN_ON_RE,
    threads: 2
    shell:
        "python -m cnnlab.stages.train_encoder{FACE} face.train_on={wildcards.train_on} "
        "threads={threads}{OVERRIDES} > {log} 2>&1"


rule encode_faces:
    input:
        ckpt=lambda w: expand(rules.train_encoder.output.best, train_on=FACE_TRAIN_ON[w.face_ds]),
        data=lambda w: expand(rules.prepare.output, dataset=w.face_ds),
        code="src/cnnlab/stages/encode_faces.py",
    output:
        npz="data/encodings/{face_ds}-{split}.npz",
    log:
        "logs/encode_faces-{face_ds}-{split}.log",
    benchmark:
        "logs/bench/encode_faces-{face_ds}-{split}.tsv"
    wildcard_constraints:
        face_ds=FACE_DS_RE,
        split="train|val|test",
    params:
        train_on=lambda w: FACE_TRAIN_ON[w.face_ds],
    shell:
        "python -m cnnlab.stages.encode_faces{FACE} face.train_on={params.train_on} "
        "gallery.root=data/prepared/{wildcards.face_ds}/{wildcards.split} "
        "gallery.name={wildcards.face_ds}-{wildcards.split}{OVERRIDES} > {log} 2>&1"


rule calibrate:
    input:
        val=expand(rules.encode_faces.output.npz, split="val", allow_missing=True),
        gallery=expand(rules.encode_faces.output.npz, split="test", allow_missing=True),
        code="src/cnnlab/stages/calibrate.py",
    output:
        val="data/encodings/{face_ds}-val.threshold.json",
        gallery="data/encodings/{face_ds}-test.threshold.json",
    log:
        "logs/calibrate-{face_ds}.log",
    benchmark:
        "logs/bench/calibrate-{face_ds}.tsv"
    wildcard_constraints:
        face_ds=FACE_DS_RE,
    params:
        train_on=lambda w: FACE_TRAIN_ON[w.face_ds],
    shell:
        "python -m cnnlab.stages.calibrate{FACE} face.train_on={params.train_on}{OVERRIDES} > {log} 2>&1"


rule evaluate_faces:
    input:
        test=expand(rules.encode_faces.output.npz, face_ds=FACE_IDS, split="test"),
        val=expand(rules.encode_faces.output.npz, face_ds=FACE_IDS, split="val"),
        threshold=expand(rules.calibrate.output.gallery, face_ds=FACE_IDS),
        ckpt=expand(rules.train_encoder.output.best, train_on="ids"),
        data=expand(rules.prepare.output, dataset=FACE_IDS),
        code=["src/cnnlab/stages/evaluate_faces.py", "src/cnnlab/face/evaluate.py"],
    output:
        metrics="reports/faces/metrics.json",
        report="reports/faces/report.md",
        roc="reports/faces/roc.png",
        distances="reports/faces/distances.png",
    log:
        "logs/evaluate_faces.log",
    benchmark:
        "logs/bench/evaluate_faces.tsv"
    shell:
        "python -m cnnlab.stages.evaluate_faces{FACE}{OVERRIDES} > {log} 2>&1"
