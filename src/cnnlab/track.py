"""The one place that talks to MLflow.

Stages open a :class:`Tracker`, which creates one MLflow run tagged with the stage, data set,
model and git commit, logs the resolved Hydra config as params, and then metrics and artifacts.

Parallel jobs share one store. With the default ``sqlite:///mlflow.db`` every call to the store
is made under an exclusive file lock (``mlflow.db.lock``) and retried on "database is locked",
so four stages started at once record four runs. With an HTTP tracking server the server
serialises writes and no lock is taken.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from filelock import FileLock

DEFAULT_URI_FILE = "mlflow.db"
RESUMED_FROM = "cnnlab.resumed_from"
RESUMED_BY = "cnnlab.resumed_by"


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
        parent_run_id: nest this run under another (sweeps).
    """

    def __init__(self, stage: str, params: Mapping[str, Any], tags: Mapping[str, Any] | None = None,
                 experiment: str = "cnnlab", uri: str | None = None, run_name: str | None = None,
                 parent_run_id: str | None = None):
        self.uri = tracking_uri(uri)
        self.stage = stage
        self.params = flatten(params)
        self.tags = {"stage": stage, "git_commit": git_commit(), **{k: str(v) for k, v in (tags or {}).items()}}
        if parent_run_id:
            self.tags["mlflow.parentRunId"] = parent_run_id
        self.experiment = experiment
        self.run_name = run_name or "-".join([stage] + [str(self.tags[k]) for k in ("dataset", "model") if k in self.tags])
        self.run_id: str | None = None
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

        def _start():
            self._client = MlflowClient(tracking_uri=self.uri)
            exp = self._client.get_experiment_by_name(self.experiment)
            exp_id = exp.experiment_id if exp else self._client.create_experiment(self.experiment)
            run = self._client.create_run(exp_id, tags=self.tags, run_name=self.run_name)
            return run.info.run_id

        self.run_id = self._call(_start)
        self.log_params(self.params)
        return self

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

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for k, v in tags.items():
            self._call(lambda k=k, v=v: self._client.set_tag(self.run_id, k, str(v)))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Upload a file or a whole directory."""
        path = Path(path)
        if path.is_dir():
            self._call(lambda: self._client.log_artifacts(self.run_id, str(path), artifact_path))
        else:
            self._call(lambda: self._client.log_artifact(self.run_id, str(path), artifact_path))

    def end(self, status: str = "FINISHED") -> None:
        if self.run_id:
            self._call(lambda: self._client.set_terminated(self.run_id, status))

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


def exit_status(exc: BaseException | None) -> str:
    """The MLflow status of a run whose block ended with ``exc``: FINISHED, KILLED (a signal) or FAILED."""
    if exc is None:
        return "FINISHED"
    from .tasks.skeleton import Interrupted

    if isinstance(exc, (Interrupted, KeyboardInterrupt)):
        return "KILLED"
    return "FAILED"

