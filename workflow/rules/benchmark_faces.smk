# Ensembles × multi-crop for the face encoder (issue 7): the from-scratch encoder (course39)
# trained with each of config["face_seeds"] on the training people of the identity
# split, scored on its test people. Seed 0 is the encoder every other face rule uses; seed k > 0 is
# trained by train_encoder_seed into models/faces/<encoder>-<train_on>-seed<k>/, as
# cnnlab.evaluate.face_benchmark.encoder_checkpoints names it.
from types import SimpleNamespace as _NS

# The default encoder (conf/config.yaml) is dlib's pretrained one, which no seed changes: the seeds
# are the first from-scratch encoder's of face.compare.encoders.
BENCH_ENCODER = next((n for n, kind in ALL_ENCODERS.items() if kind == "scratch"), None)
if BENCH_ENCODER is None:
    raise ValueError("benchmark_faces ensembles encoders trained with several seeds; face.compare.encoders "
                     "of conf/face/default.yaml lists no scratch encoder")
FACE_SEEDS = "[" + ",".join(str(s) for s in config["face_seeds"]) + "]"


use rule train_encoder as train_encoder_seed with:
    output:
        best="models/faces/{encoder}-{train_on}-seed{seed}/best.ckpt",
        last="models/faces/{encoder}-{train_on}-seed{seed}/last.ckpt",
        metrics="models/faces/{encoder}-{train_on}-seed{seed}/metrics.json",
    log:
        "logs/train_encoder-{encoder}-{train_on}-seed{seed}.log",
    benchmark:
        "logs/bench/train_encoder-{encoder}-{train_on}-seed{seed}.tsv"
    params:
        args=lambda w: f"{encoder_args(w.encoder)} seed={w.seed} "
                       f"face.paths.run=models/faces/{w.encoder}-{w.train_on}-seed{w.seed}",


def face_seed_ckpts(wildcards):
    """best.ckpt of each seed's encoder: seed 0 is the default one."""
    return [encoder_ckpt(BENCH_ENCODER) if int(s) == 0
            else expand(rules.train_encoder_seed.output.best, encoder=BENCH_ENCODER, train_on="ids", seed=s)[0]
            for s in config["face_seeds"]]


rule benchmark_faces:
    input:
        ckpts=face_seed_ckpts,
        data=expand(rules.align_faces.output, face_ds=FACE_IDS),
        conf=lambda w: ["conf/benchmark/default.yaml", *face_conf_files(_NS(encoder=BENCH_ENCODER))],
        code=["src/cnnlab/stages/benchmark_faces.py", "src/cnnlab/evaluate/face_benchmark.py"],
    output:
        table=f"reports/benchmark/{FACE_IDS}/table.md",
        metrics=f"reports/benchmark/{FACE_IDS}/metrics.json",
    log:
        "logs/benchmark_faces.log",
    benchmark:
        "logs/bench/benchmark_faces.tsv"
    params:
        args=encoder_args(BENCH_ENCODER),
    shell:
        "python -m cnnlab.stages.benchmark_faces {params.args} 'benchmark.faces.seeds={FACE_SEEDS}'{OVERRIDES} "
        "> {log} 2>&1"
