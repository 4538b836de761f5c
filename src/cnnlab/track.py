"""The one place that talks to MLflow.

Stages open a :class:`Tracker`, which creates one MLflow run tagged with the stage, data set,
model and git commit (and MLflow's own ``mlflow.source.*`` / ``mlflow.user`` tags), logs the
resolved Hydra config as params and as the artifact ``config.yaml``, and then metrics (named
``train/…``, ``val/…`` as in the progress bar), plain facts (as params) and artifacts.

- **Pipeline runs.** With ``CNNLAB_PIPELINE_RUN=<id>`` in the environment (the workflow sets it
  once per invocation), every stage's run nests under one parent run ``pipeline-<id>``, created by
  whichever stage comes first, under a file lock so that parallel jobs create exactly one.
- **Links.** A training run records its run id in ``<run folder>/mlflow_run.json``; runs that read
  checkpoints tag ``cnnlab.train_run_id(s)`` with it (:meth:`Tracker.link_train_runs`).
- **Artifacts that survive a move.** With a sqlite store, a new experiment's artifact location
  is ``mlflow-artifacts:/<experiment>``, resolved against ``mlartifacts/`` beside ``mlflow.db``
  (or ``$CNNLAB_ARTIFACT_ROOT``), never an absolute path in the database. ``mlflow server
  --backend-store-uri sqlite:///mlflow.db --artifacts-destination mlartifacts`` (``make mlflow-ui``)
  serves them from wherever the repository now is.

Parallel jobs share one store. With the default ``sqlite:///mlflow.db`` every call to the store
is made under an exclusive file lock (``mlflow.db.lock``) and retried on "database is locked",
so four stages started at once record four runs. With an HTTP tracking server the server
serialises writes and no lock is taken.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from filelock import FileLock

DEFAULT_URI_FILE = "mlflow.db"
RESUMED_FROM = "cnnlab.resumed_from"
RESUMED_BY = "cnnlab.resumed_by"
PIPELINE_ENV = "CNNLAB_PIPELINE_RUN"
PIPELINE_TAG = "cnnlab.pipeline_run"
ARTIFACT_ROOT_ENV = "CNNLAB_ARTIFACT_ROOT"
RUN_RECORD = "mlflow_run.json"
TRAIN_RUN = "cnnlab.train_run_id"
TRAIN_RUNS = "cnnlab.train_run_ids"
PROXY = "mlflow-artifacts:"
# Plain facts about a run: logged as params, never as metrics (they have no history to plot).
FACT = re.compile(r"^(num_params|epochs|best_epoch|stopped_early|n|n_\w+|images|dim|no_face|augment_k|image_size|input_size|\w*size_mb)$")


def tracking_uri(configured: str | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the configured URI, else ``sqlite:///<cwd>/mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or f"sqlite:///{Path.cwd() / DEFAULT_URI_FILE}"


def git_commit(cwd: str | Path = ".") -> str:
    """The current commit (with ``-dirty`` if the tree has changes), or "unknown" outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_record(run_dir: str | Path) -> str | None:
    """The MLflow run id that produced ``run_dir`` (its ``mlflow_run.json``), or None."""
    try:
        return json.loads((Path(run_dir) / RUN_RECORD).read_text()).get("run_id") or None
    except (OSError, ValueError):
        return None


def artifact_root(uri: str) -> Path | None:
    """Where ``mlflow-artifacts:`` paths live for a sqlite store (None for other stores)."""
    if not uri.startswith("sqlite:///"):
        return None
    configured = os.environ.get(ARTIFACT_ROOT_ENV)
    return Path(configured) if configured else Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts"


def list_artifacts(uri: str, run_id: str, path: str | None = None) -> list[str]:
    """The artifact paths directly under ``path`` of a run, as ``MlflowClient.list_artifacts`` gives them.

    A sqlite store's ``mlflow-artifacts:`` locations are served only by ``mlflow server``; without
    one, MLflow's client cannot list them, so they are read from :func:`artifact_root` here.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    location = client.get_run(run_id).info.artifact_uri
    root = artifact_root(uri)
    if root is None or not location.startswith(PROXY):
        return [a.path for a in client.list_artifacts(run_id, path)]
    base = root / location.removeprefix(PROXY).lstrip("/")
    folder = base / path if path else base
    return sorted(str(p.relative_to(base)) for p in folder.iterdir()) if folder.is_dir() else []


def ui_url(uri: str, experiment_id: str, run_id: str) -> str | None:
    """The run's page in the MLflow UI when the store is a server (None for a local store)."""
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    return None


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten a nested mapping to ``{"a.b.c": "value"}`` strings (MLflow params)."""
    out: dict[str, str] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = str(value)[:6000]
    return out


class Tracker:
    """One MLflow run for one stage invocation.

    Args:
        stage: pipeline stage name (tag ``stage``).
        params: the resolved config as a nested dict (logged flattened as params).
        tags: extra tags, e.g. ``{"dataset": "digits", "model": "lenet5", "seed": "0"}``.
        experiment: MLflow experiment name.
        uri: tracking URI (see :func:`tracking_uri`).
        run_name: display name; defaults to ``stage-<dataset>-<model>``.
        parent_run_id: nest this run under another (sweeps); else under the pipeline's parent
            run when ``$CNNLAB_PIPELINE_RUN`` is set.
        source: ``mlflow.source.name`` (default: the running module or script).
    """

    def __init__(self, stage: str, params: Mapping[str, Any], tags: Mapping[str, Any] | None = None,
                 experiment: str = "cnnlab", uri: str | None = None, run_name: str | None = None,
                 parent_run_id: str | None = None, source: str | None = None):
        self.uri = tracking_uri(uri)
        self.stage = stage
        self.config = dict(params)
        self.params = flatten(params)
        commit = git_commit()
        self.tags = {"stage": stage, "git_commit": commit, **{k: str(v) for k, v in (tags or {}).items()},
                     "mlflow.source.type": "LOCAL", "mlflow.source.name": source or _source_name(),
                     "mlflow.user": _user()}
        if commit != "unknown":
            self.tags["mlflow.source.git.commit"] = commit.removesuffix("-dirty")
        self.parent_run_id = parent_run_id
        self.pipeline = os.environ.get(PIPELINE_ENV) or None
        if self.pipeline:
            self.tags[PIPELINE_TAG] = self.pipeline
        self.experiment = experiment
        self.run_name = run_name or "-".join([stage] + [str(self.tags[k]) for k in ("dataset", "model") if k in self.tags])
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self.artifact_uri: str | None = None
        self._client = None
        self._lock = None
        if self.uri.startswith("sqlite:///"):
            db = Path(self.uri.removeprefix("sqlite:///"))
            db.parent.mkdir(parents=True, exist_ok=True)
            self._lock = FileLock(str(db) + ".lock", timeout=600)

    def _call(self, fn: Callable[[], Any], retries: int = 8) -> Any:
        """Run one store call under the lock, retrying transient sqlite lock errors."""
        for attempt in range(retries):
            try:
                with self._lock if self._lock else contextlib.nullcontext():
                    return fn()
            except Exception as err:  # sqlalchemy OperationalError wrapped in MlflowException
                if "locked" not in str(err) or attempt == retries - 1:
                    raise
                time.sleep(0.2 * 2 ** attempt)

    def start(self) -> "Tracker":
        """Create the experiment if needed and start the run."""
        from mlflow.tracking import MlflowClient

        # MLflow prints "View run ... at" on its own when a run ends; the stage's closing line says it once.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

        def _connect() -> str:  # a fresh sqlite store creates its tables here: under the lock
            self._client = MlflowClient(tracking_uri=self.uri)
            return self._experiment_id()

        self.experiment_id = self._call(_connect)
        parent = self.parent_run_id or (self._pipeline_parent() if self.pipeline else None)
        tags = {**self.tags, **({"mlflow.parentRunId": parent} if parent else {})}
        self.parent_run_id = parent
        run = self._call(lambda: self._client.create_run(self.experiment_id, tags=tags, run_name=self.run_name))
        self.run_id, self.artifact_uri = run.info.run_id, run.info.artifact_uri
        self.log_params(self.params)
        self._log_config()
        return self

    def _experiment_id(self) -> str:
        exp = self._client.get_experiment_by_name(self.experiment)
        if exp:
            return exp.experiment_id
        location = f"{PROXY}/{self.experiment}" if artifact_root(self.uri) is not None else None
        try:
            return self._client.create_experiment(self.experiment, artifact_location=location)
        except Exception:  # created meanwhile by a parallel job (HTTP stores take no file lock)
            exp = self._client.get_experiment_by_name(self.experiment)
            if exp is None:
                raise
            return exp.experiment_id

    def _pipeline_parent(self) -> str:
        """The id of this pipeline invocation's parent run, created by the first stage that asks."""
        from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

        key = hashlib.sha1(f"{self.uri}|{self.experiment}|{self.pipeline}".encode()).hexdigest()[:16]
        with FileLock(str(Path(tempfile.gettempdir()) / f"cnnlab-pipeline-{key}.lock"), timeout=600):
            found = self._call(lambda: self._client.search_runs(
                [self.experiment_id], filter_string=f"tags.`{PIPELINE_TAG}` = '{self.pipeline}' and tags.stage = 'pipeline'",
                max_results=1))
            if found:
                return found[0].info.run_id
            tags = {k: v for k, v in self.tags.items() if k != "stage" and not k.startswith("mlflow.source.name")}
            tags.update({"stage": "pipeline", "mlflow.source.name": "snakemake",
                         MLFLOW_RUN_NAME: f"pipeline-{self.pipeline}"})
            for k in ("dataset", "model", "seed", "strategy", "shots"):
                tags.pop(k, None)
            run = self._call(lambda: self._client.create_run(self.experiment_id, tags=tags,
                                                             run_name=f"pipeline-{self.pipeline}"))
            return run.info.run_id

    def _log_config(self) -> None:
        import yaml

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "config.yaml"
            path.write_text(yaml.safe_dump(self.config, sort_keys=False))
            self.log_artifact(path)

    @property
    def url(self) -> str | None:
        """The run's page in the MLflow UI (servers only)."""
        return ui_url(self.uri, self.experiment_id, self.run_id) if self.run_id else None

    def describe(self) -> str:
        """``MLflow run <id> (<url>)`` for a stage's closing line."""
        where = self.url or self.uri
        return f"MLflow run {self.run_id} ({where})"

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self._call(lambda chunk=items[i:i + 100]: self._client.log_batch(self.run_id, params=chunk))

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k.replace("@", "_at_"), float(v), now, step) for k, v in metrics.items()]
        for i in range(0, len(items), 500):
            self._call(lambda chunk=items[i:i + 500]: self._client.log_batch(self.run_id, metrics=chunk))

    def log_results(self, results: Mapping[str, Any], step: int = 0) -> None:
        """Log a stage's result dict: numbers as metrics, plain facts (``num_params``, ``epochs``,
        ``n_*`` counts, sizes) and booleans as params, strings as tags; None and nested values are skipped."""
        metrics, facts, tags = {}, {}, {}
        for k, v in results.items():
            if isinstance(v, bool) or (isinstance(v, (int, float)) and FACT.match(k)):
                facts[k] = v
            elif isinstance(v, (int, float)):
                metrics[k] = v
            elif isinstance(v, str):
                tags[k] = v
        facts = {k: v for k, v in facts.items() if k not in self.params}
        self.log_metrics(metrics, step=step)
        self.log_params(facts)
        self.set_tags(tags)

    def link_train_runs(self, run_dirs: Any) -> list[str]:
        """Tag the training runs that made ``run_dirs`` (folders with ``mlflow_run.json``).

        One folder: ``cnnlab.train_run_id=<id>``; several: ``cnnlab.train_run_ids=<id>,<id>,...``.
        Folders without a record (made before runs were recorded, or copied in) are skipped.
        Returns the ids found.
        """
        dirs = [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)
        ids = [i for i in (run_record(d) for d in dirs) if i]
        if len(dirs) == 1 and ids:
            self.set_tags({TRAIN_RUN: ids[0]})
        elif ids:
            self.set_tags({TRAIN_RUNS: ",".join(ids)})
        return ids

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for k, v in tags.items():
            self._call(lambda k=k, v=v: self._client.set_tag(self.run_id, k, str(v)))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Upload a file or a whole directory (``mlflow-artifacts:`` locations of a sqlite store:
        copied into :func:`artifact_root`)."""
        path = Path(path)
        root = artifact_root(self.uri)
        if root is not None and self.artifact_uri and self.artifact_uri.startswith(PROXY):
            dest = root / self.artifact_uri.removeprefix(PROXY).lstrip("/")
            dest = dest / artifact_path if artifact_path else dest
            dest.mkdir(parents=True, exist_ok=True)
            if path.is_dir():
                shutil.copytree(path, dest, dirs_exist_ok=True)  # its contents, as MLflow's log_artifacts
            else:
                shutil.copy2(path, dest / path.name)
            return
        if path.is_dir():
            self._call(lambda: self._client.log_artifacts(self.run_id, str(path), artifact_path))
        else:
            self._call(lambda: self._client.log_artifact(self.run_id, str(path), artifact_path))

    def end(self, status: str = "FINISHED") -> None:
        """Close the run; a pipeline parent is closed too (FAILED once any stage failed), so its
        end time is the last stage's."""
        if self.run_id:
            self._call(lambda: self._client.set_terminated(self.run_id, status))
            if self.pipeline and self.parent_run_id:
                def _close_parent():
                    prev = self._client.get_run(self.parent_run_id).info.status
                    failed = status != "FINISHED" or prev in ("FAILED", "KILLED")
                    self._client.set_terminated(self.parent_run_id, "FAILED" if failed else "FINISHED")

                with contextlib.suppress(Exception):
                    self._call(_close_parent)

    def link_resumed(self, previous_run_id: str) -> None:
        """Record that this run continues ``previous_run_id`` (an interrupted run of the same output).

        Tags this run ``cnnlab.resumed_from=<previous>`` and the previous one
        ``cnnlab.resumed_by=<this>``. A previous run still marked RUNNING died without a word
        (``kill -9``, a lost node): it is marked KILLED.
        """
        self.set_tags({RESUMED_FROM: previous_run_id})

        def _close_previous():
            prev = self._client.get_run(previous_run_id)
            self._client.set_tag(previous_run_id, RESUMED_BY, self.run_id)
            if prev.info.status == "RUNNING":
                self._client.set_terminated(previous_run_id, "KILLED")

        try:
            self._call(_close_previous)
        except Exception as err:  # the previous run may live in another store; the tag above stays
            import logging

            logging.getLogger(__name__).warning("could not update the resumed MLflow run %s: %s", previous_run_id, err)

    def __enter__(self) -> "Tracker":
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.end(exit_status(exc))


def _source_name() -> str:
    """The running module (``cnnlab.stages.train``) or script, for ``mlflow.source.name``."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec.name if spec is not None and spec.name else Path(sys.argv[0] or "python").name


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def exit_status(exc: BaseException | None) -> str:
    """The MLflow status of a run whose block ended with ``exc``: FINISHED, KILLED (a signal) or FAILED."""
    if exc is None:
        return "FINISHED"
    from .interrupts import Interrupted

    if isinstance(exc, (Interrupted, KeyboardInterrupt)):
        return "KILLED"
    return "FAILED"

