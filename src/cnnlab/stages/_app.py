"""What every stage script shares: Hydra entry point, config → dict, tracker construction."""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, Callable

import hydra
from omegaconf import DictConfig, OmegaConf

from ..config import compose, conf_dir, to_dict  # noqa: F401  (re-exported: stages and benchmarks use them)

log = logging.getLogger("cnnlab")

# Main options of every stage, after its own description in ``--help`` (conf/hydra/help/stage.yaml).
_COMMON_OPTIONS = """Main options:
  data=NAME | data.name=NAME   the data set (conf/data/, or one prepared under that name)
  model=NAME                   the network (conf/model/: lenet5, alexnet, vgg16, resnet18, ...)
  seed=N                       the seed (outputs go to .../seed<N>/)
  debug=tiny                   a few images and two epochs: the stage in seconds
  resume=true                  continue an interrupted training run
  threads=N, num_workers=N     CPU threads, DataLoader workers
  mlflow.tracking_uri=URI      where runs are recorded (default $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)"""


_current: dict[str, str] = {}


def stage_help(name: str) -> str:
    """``--help`` header of the running stage (else ``name``): its module docstring, then the main options."""
    import importlib

    name = _current.get("stage", name)
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    doc = main.__doc__ if spec is not None and spec.name.endswith(f".{name}") else None
    if doc is None:
        try:
            doc = importlib.import_module(f"cnnlab.stages.{name}").__doc__
        except ImportError:
            doc = None
    # "$" escaped: Hydra fills the template with string.Template ($APP_CONFIG_GROUPS)
    return f"{(doc or name).strip()}\n\n{_COMMON_OPTIONS}".replace("$", "$$")


if not OmegaConf.has_resolver("cnnlab_help"):
    OmegaConf.register_new_resolver("cnnlab_help", stage_help)


def stage(fn: Callable[[DictConfig], Any] | None = None, *, config_name: str = "config",
          recorded_data: bool = True) -> Any:
    """Wrap a stage function as a Hydra app reading ``conf/<config_name>.yaml``.

    Use as ``@stage`` (the shared ``conf/config.yaml``) or ``@stage(config_name="detect")`` for a
    stage family with its own entry-point config that composes only what it uses.

    With ``recorded_data`` (all stages but ``prepare``), ``data.name=NAME`` on the command line
    takes the rest of ``data`` from what ``prepare`` recorded (:mod:`cnnlab.data.recorded`).

    Known bad-input errors (missing files, bad data, bad config values, damaged checkpoints)
    exit with status 1 and a one-line message naming the file or key, instead of a traceback.
    ``seed`` is checked first; training stages check their optimiser, scheduler and Trainer nodes
    before they open their MLflow run (:func:`cnnlab.tasks.config_check.check_training_config`). SIGTERM and SIGINT exit with 128 + the signal number after the
    MLflow run is marked KILLED; during training the skeleton stops at the next batch and keeps
    its partial checkpoint (the log says how to resume).
    """

    if fn is None:
        return functools.partial(stage, config_name=config_name, recorded_data=recorded_data)

    @functools.wraps(fn)
    def main() -> None:
        name = stage_name(fn)
        _current["stage"] = name

        @hydra.main(config_path=str(conf_dir()), config_name=config_name, version_base="1.3")
        def _run(cfg: DictConfig) -> None:
            from hydra.core.hydra_config import HydraConfig

            from ..checkpoint import plain
            from ..data.images import DataError
            from ..tasks.config_check import check_seed
            from ..interrupts import Interrupted

            from ..workflow_guard import watch_parent

            watch_parent()      # under Snakemake: stop (SIGTERM) if the Snakemake run dies
            _sweep_paths(cfg)
            previous = signal.signal(signal.SIGTERM, _raise_interrupted)
            try:
                check_seed(cfg)
                if cfg.get("threads"):
                    import torch

                    torch.set_num_threads(cfg.threads)
                if recorded_data and "data" in cfg:
                    from ..data.recorded import use_recorded_data

                    use_recorded_data(cfg, HydraConfig.get().overrides.task)
                fn(cfg)
            except Interrupted as err:
                log.error("stage %s interrupted: %s", name, err)
                sys.exit(err.exit_code)
            except KeyboardInterrupt:
                log.error("stage %s interrupted by SIGINT", name)
                sys.exit(128 + signal.SIGINT)
            except (DataError, FileNotFoundError, ValueError, KeyError) as err:
                message = plain(str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err))
                log.error("stage %s failed: %s", name, message)
                sys.exit(f"error: {message}")
            finally:
                signal.signal(signal.SIGTERM, previous)

        _run()

    return main


def stage_name(fn: Callable[..., Any]) -> str:
    """The stage's own name (``train`` for ``cnnlab.stages.train``), also when run as ``python -m``."""
    module = fn.__module__
    if module == "__main__":
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        module = spec.name if spec is not None else Path(sys.argv[0]).stem
    return module.rsplit(".", 1)[-1]


def _raise_interrupted(signum: int, frame: Any) -> None:
    """SIGTERM outside training (which handles it itself, at a batch boundary): stop now, loudly."""
    from ..interrupts import Interrupted

    raise Interrupted(signum, f"stopped by {signal.Signals(signum).name}; nothing was published")


def _sweep_paths(cfg: DictConfig) -> None:
    """In a multirun, give each job its own run folder: ``<paths.run>/<override_dirname>``."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    if hc.mode == RunMode.MULTIRUN and hc.job.override_dirname and "run" in cfg.paths:
        OmegaConf.update(cfg, "paths.run", f"{cfg.paths.run}/{hc.job.override_dirname}")


# Overrides already in a run's name (or that never differ in meaning): left out of it.
_NAME_SKIP = ("data", "data.name", "model", "seed", "resume", "threads", "num_workers", "debug", "paths.",
              "mlflow.", "hydra.", "select.metrics", "benchmark.models_dir", "benchmark.out", "finetune.out",
              "finetune.source", "face.paths.", "gallery.", "finetune", "trainer.enable_progress_bar",
              "trainer.enable_model_summary")


def run_name(stage_name: str, tags: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()) -> str:
    """A run name that says what differs: ``train-digits-lenet5-seed3-optim.lr=0.05``.

    Stage, data set, model, then strategy, shots and seed when set, then the command line's other
    overrides (paths, threads and the like left out; long values shortened).
    """
    parts = [stage_name] + [str(tags[k]) for k in ("dataset", "model", "strategy") if tags.get(k) not in (None, "")]
    if tags.get("shots") not in (None, "", "None"):
        parts.append(f"shots{tags['shots']}")
    if tags.get("seed") not in (None, ""):
        parts.append(f"seed{tags['seed']}")
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+~")
        if any(key == s or (s.endswith(".") and key.startswith(s)) for s in _NAME_SKIP):
            continue
        parts.append(o if len(o) <= 40 else o[:37] + "...")
    return "-".join(parts)[:250]


def tracker(stage_name: str, cfg: DictConfig, **tags: Any):
    """An (unstarted) MLflow tracker for this stage, tagged with data set and model.

    Its run name says what differs (:func:`run_name`); a sweep job's overrides are in it, so
    the children of a sweep are told apart. Nested under a sweep's parent run
    (``$CNNLAB_PARENT_RUN_ID``) or the pipeline's (``$CNNLAB_PIPELINE_RUN``).
    """
    from ..track import Tracker

    from ._sweep import ENV

    base = {"dataset": cfg.data.name} if "data" in cfg else {}
    tags = {k: v for k, v in {**base, **tags}.items() if v is not None}
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task)
    except ValueError:  # not inside a Hydra app (tests calling a stage function)
        overrides = []
    return Tracker(stage_name, to_dict(cfg), tags=tags, experiment=cfg.mlflow.experiment,
                   uri=cfg.mlflow.tracking_uri, parent_run_id=os.environ.get(ENV),
                   run_name=run_name(stage_name, tags, overrides), source=f"cnnlab.stages.{stage_name}")


def done(t: Any, wrote: Any) -> None:
    """A stage's closing line: what it wrote and its MLflow run (id, and UI URL with a server)."""
    log.info("%s wrote %s; %s", t.stage, wrote, t.describe())


def done_training(t: Any, run_dir: str) -> None:
    """A training stage's closing steps: tag the run with its folder, log the folder's
    ``metrics.json``, ``details.json`` (when written), ``history.csv``, ``learning_curves.png`` and
    ``best.ckpt`` (under ``model/``) as artifacts, then :func:`done`."""
    run = Path(run_dir)
    t.set_tags({"cnnlab.run_dir": run_dir})
    for name in ("metrics.json", "details.json", "history.csv", "learning_curves.png", "best.ckpt"):
        if (run / name).is_file():
            t.log_artifact(run / name, "model" if name == "best.ckpt" else None)
    done(t, run)
