# Helpers of the face rules (faces.smk, benchmark_faces.smk). Faces: prepare → align_faces → (import_dlib | train_encoder) → encode_faces → calibrate →
# evaluate_faces (one report per encoder) → compare_faces (one table). The encoders compared, and
# so built, are conf/face/default.yaml's face.compare.encoders: one truth for the stages and the DAG.
import os as _os

from cnnlab.stages._app import compose as _compose


def _face(*overrides):
    """The face stages' composed `face` node (conf/faces.yaml): Hydra resolves it, not this file."""
    return _compose(*overrides, *EXTRA, config_name="faces").face


FACE_CONF = _face()
FACE_DATASETS = dict(FACE_CONF.datasets)                       # train_on → prepared data set
FACE_TRAIN_ON = {ds: key for key, ds in FACE_DATASETS.items()}  # prepared data set → train_on
FACE_IDS = FACE_DATASETS["ids"]
ALL_ENCODERS = dict(FACE_CONF.compare.encoders)                 # name → scratch | pretrained | finetune
# those compared (and so built): the workflow config's face_encoders, else face.compare.only, else all
_ONLY = config.get("face_encoders") or FACE_CONF.compare.get("only") or list(ALL_ENCODERS)
_unknown = sorted(set(_ONLY) - set(ALL_ENCODERS))
if _unknown:
    raise ValueError(f"face_encoders / face.compare.only: {_unknown} are not in face.compare.encoders "
                     f"of conf/face/default.yaml")
FACE_ENCODERS = {n: ALL_ENCODERS[n] for n in _ONLY}


def encoder_file(name):
    """conf/encoder/<file>.yaml of an encoder name, and the strategy a `<file>_<strategy>` name adds."""
    if _os.path.isfile(f"conf/encoder/{name}.yaml"):
        return name, None
    base, _, strategy = name.rpartition("_")
    if base and _os.path.isfile(f"conf/encoder/{base}.yaml"):
        return base, strategy
    raise ValueError(f"face.compare.encoders: no conf/encoder/{name}.yaml (nor {base}.yaml + a strategy)")


def encoder_overrides(name):
    """Hydra overrides that select an encoder by name."""
    base, strategy = encoder_file(name)
    return [f"encoder={base}"] + ([f"face.encoder.strategy={strategy}"] if strategy else [])


PRETRAINED = [n for n, kind in ALL_ENCODERS.items() if kind == "pretrained"]  # a fine-tune may need one
TRAINED = [n for n in ALL_ENCODERS if n not in PRETRAINED]
# the fine-tuned encoders start from the pretrained one (`face.encoder.init`)
FT_INIT = {n: _face(*encoder_overrides(n)).encoder.init for n in TRAINED}


def encoder_ckpt(name, train_on="ids"):
    """The checkpoint an encoder is used from (called at DAG time, when the rules exist)."""
    if name in PRETRAINED:
        return expand(rules.import_dlib.output.ckpt, encoder=name)[0]
    return expand(rules.train_encoder.output.best, encoder=name, train_on=train_on)[0]


def FaceStage(name, *overrides):
    """A face stage: conf/faces.yaml, the job's encoder selected by its `encoder` wildcard."""
    enc = lambda w: encoder_overrides(w.encoder) if hasattr(w, "encoder") else []
    return Stage(name, enc, *overrides, config_name="faces")


TRAIN_ON_RE = "|".join(FACE_DATASETS)
FACE_DS_RE = "|".join(FACE_DATASETS.values())
ENCODER_RE = "|".join(ALL_ENCODERS)

_align = FaceStage("align_faces", lambda w: f"face.train_on={FACE_TRAIN_ON[w.face_ds]}")
_import = FaceStage("import_dlib")
_train_enc = FaceStage("train_encoder", "face.train_on={train_on}", "resume=true")
_encode = FaceStage("encode_faces", lambda w: f"face.train_on={FACE_TRAIN_ON[w.face_ds]}",
                    "gallery.root=data/aligned/{face_ds}/{split}", "gallery.name={face_ds}-{split}")
_calibrate = FaceStage("calibrate", lambda w: f"face.train_on={FACE_TRAIN_ON[w.face_ds]}")
# the baselines depend on the split only: the first compared encoder's report carries them
_eval_faces = FaceStage("evaluate_faces", lambda w: f"face.evaluate.baselines={str(w.encoder == next(iter(FACE_ENCODERS))).lower()}")
_compare = FaceStage("compare_faces", f"face.compare.only={hydra_list(FACE_ENCODERS)}")


# Ensembles × multi-crop for the face encoder (issue 7): the first from-scratch encoder of
# face.compare.encoders (course39; the default encoder, dlib's pretrained one, no seed changes)
# trained with each of config["face_seeds"] on the training people of the identity split, scored on
# its test people. Seed 0 is the encoder the other face rules build; seed k > 0 is trained by
# train_encoder_seed into models/faces/<encoder>-<train_on>-seed<k>/, as
# cnnlab.face.evaluation.benchmark.encoder_checkpoints names it.
BENCH_ENCODER = next((n for n, kind in ALL_ENCODERS.items() if kind == "scratch"), None)
if BENCH_ENCODER is None:
    raise ValueError("benchmark_faces ensembles encoders trained with several seeds; face.compare.encoders "
                     "of conf/face/default.yaml lists no scratch encoder")

_train_enc_seed = FaceStage("train_encoder", "face.train_on={train_on}", "seed={seed}",
                            lambda w: f"face.paths.run={_os.path.dirname(_seed_best(w))}", "resume=true")


def _seed_best(wildcards):
    return expand(rules.train_encoder_seed.output.best, **dict(wildcards.items()))[0]


def face_seed_ckpts(wildcards):
    """best.ckpt of each seed's encoder: seed 0 is the default one."""
    return [encoder_ckpt(BENCH_ENCODER) if int(s) == 0
            else expand(rules.train_encoder_seed.output.best, encoder=BENCH_ENCODER, train_on="ids", seed=s)[0]
            for s in config["face_seeds"]]


_bench_faces = Stage("benchmark_faces", *encoder_overrides(BENCH_ENCODER),
                     f"benchmark.faces.seeds={hydra_list(config['face_seeds'])}", config_name="faces")
