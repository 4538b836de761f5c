# Shared helpers: config validation, and what each stage reads and how it is called.
#
# THE CONVENTION FOR EVERY RULE (cnnlab.workflow_io answers "what does this stage read"):
#
#   _train = Stage("train", "data={dataset}", "model={model}", "seed={seed}")   # Hydra overrides
#   (the train rule)
#       input:  data=rules.prepare.output, **_train.deps   # code: import closure, conf: Hydra files
#       output: ...
#       params: args=_train.args, sources=_train.sources    # overrides; content hash of code + conf
#       shell:  "python -m cnnlab.stages.train {params.args} > {log} 2>&1"
#
# - Overrides are templates filled from the job's wildcards (or callables of the wildcards);
#   the workflow config's `overrides` are appended to every stage. They reach the command only
#   through `params:`, so Snakemake's params trigger reruns a job whose overrides change.
# - `sources` hashes the stage's code and config files: an edited file reruns exactly the jobs
#   that read it, without mtimes (which `dvc commit`/`dvc pull` rewrite; the default profile,
#   profiles/default/, drops the mtime trigger). Data inputs chain through rules.<x>.output.
# - Code and config inputs are by_content() (Snakemake's `ancient`): their mtime reruns nothing,
#   their content does (through `sources`). Data inputs chain as usual, so a job that reruns reruns
#   its dependants; after `dvc commit`/`dvc pull` rewrote their mtimes, `snakemake --touch` puts
#   them back in DAG order (`make run` and `make pull` do it).
# - A stage family with its own entry config: Stage("detect", ..., config_name="detect").
import shlex

from snakemake.utils import validate

from cnnlab import workflow_io

validate(config, "../schemas/config.schema.yaml")

TRANSFER = config["transfer"]
EXTRA = shlex.split(config["overrides"])        # appended to every stage's overrides


def by_content(value):
    """Mark inputs no job produces `ancient`: their mtime never reruns a job (Snakemake 9 checks
    mtimes whatever --rerun-triggers says); a params hash of their content does instead. Not for
    outputs of other jobs: `ancient` also stops an upstream rerun from reaching its dependants."""
    if callable(value):
        return lambda wildcards: by_content(value(wildcards))
    # plain copies: `ancient` flags a rule's output strings in place, which expand() then refuses
    return ancient(str(value) if isinstance(value, str) else [str(v) for v in value])


def hydra_list(values):
    """A Hydra list override value: [0,1,2]."""
    return "[" + ",".join(str(v) for v in values) + "]"


class Stage:
    """`python -m cnnlab.stages.<name> <overrides>`: its args, code and config deps for a job."""

    def __init__(self, name, *overrides, config_name="config"):
        self.name, self.templates, self.config_name = name, overrides, config_name

    def overrides(self, wildcards):
        out = []
        for t in self.templates:
            v = t(wildcards) if callable(t) else t.format(**dict(wildcards.items()))
            out.extend([v] if isinstance(v, str) else v)
        return [o for o in out if o] + EXTRA

    def _deps(self, wildcards):
        return workflow_io.stage_deps(self.name, self.overrides(wildcards), self.config_name)

    @property
    def deps(self):
        """input: code= and conf= entries."""
        return {"code": by_content(lambda w: self._deps(w)["code"]),
                "conf": by_content(lambda w: self._deps(w)["conf"])}

    @property
    def args(self):
        return lambda w: " ".join(shlex.quote(o) for o in self.overrides(w))

    @property
    def sources(self):
        return lambda w: workflow_io.digest(self._deps(w)["code"] + self._deps(w)["conf"])


def raw_inputs(wildcards):
    """The raw folder a data set is prepared from (none for the scikit-learn digits): Hydra's answer."""
    root = workflow_io.data_root([f"data={wildcards.dataset}", *EXTRA])
    return [root] if root else []


def model_seeds(model):
    """The seeds a model is trained with."""
    return config.get("model_seeds", {}).get(model, config["seeds"])


def model_runs(**fixed):
    """{dataset, model, seed} of every classifier run in the config (for expand(..., zip))."""
    runs = [(d, m, s) for d in config["classify"] for m in config["models"] for s in model_seeds(m)]
    return dict(zip(("dataset", "model", "seed"), map(list, zip(*runs))))


TRAIN_KNOBS = {"optim": "optim", "lr": "optim.lr", "epochs": "trainer.max_epochs", "augment": "augment"}


def train_overrides(wildcards):
    """A model's knobs from params.yaml (`train.<model>`), then its workflow config `train_overrides`.

    Under `python -m cnnlab.dag` (config dvc_template) a knob is written as DVC's `${train.<model>.<knob>}`,
    so that `dvc exp run -S train.<model>.<knob>=...` reaches the command.
    """
    knobs = config["train"].get(wildcards.model)
    if knobs is None:
        raise ValueError(f"params.yaml: no train.{wildcards.model} block for model {wildcards.model!r}")
    template = str(config.get("dvc_template", False)).lower() == "true"
    out = [f"{key}=" + ("${train.%s.%s}" % (wildcards.model, k) if template else str(knobs[k]))
           for k, key in TRAIN_KNOBS.items()]
    return out + config.get("train_overrides", {}).get(wildcards.model, [])


# Benchmarked: the models trained with two or more seeds (ensembles need them).
BENCH_MODELS = [m for m in config["models"] if len(model_seeds(m)) >= 2]
