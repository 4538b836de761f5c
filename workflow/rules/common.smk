# Shared helpers: config validation and where each data set's raw files live.
import yaml
from snakemake.utils import validate

validate(config, "../schemas/config.schema.yaml")

SEEDS = "[" + ",".join(str(s) for s in config["seeds"]) + "]"
TRANSFER = config["transfer"]

wildcard_constraints:
    dataset="[^/]+",
    model="[^/]+",
    seed=r"\d+",
    shots=r"\d+",

OVERRIDES = (" " + config["overrides"].strip()) if config["overrides"].strip() else ""


def raw_inputs(wildcards):
    """The raw folder a data set is prepared from (none for the scikit-learn digits)."""
    with open(f"conf/data/{wildcards.dataset}.yaml") as fh:
        data = yaml.safe_load(fh)
    if data.get("source") != "folder":
        return []
    return [data["root"].replace("${paths.raw}", "data/raw")]


def conf_files(wildcards):
    """The Hydra files a stage composes: conf/config.yaml and each default group option,
    with the data set and model taken from the job's wildcards."""
    with open("conf/config.yaml") as fh:
        defaults = yaml.safe_load(fh)["defaults"]
    choice = {k: v for d in defaults if isinstance(d, dict) for k, v in d.items() if "/" not in k and v}
    choice.update({k: getattr(wildcards, k2) for k, k2 in (("data", "dataset"), ("model", "model"))
                   if hasattr(wildcards, k2)})
    return ["conf/config.yaml"] + [f"conf/{group}/{name}.yaml" for group, name in sorted(choice.items())]
