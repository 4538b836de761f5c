"""Shared fixtures: the real Hydra config, temporary MLflow stores, a scratch copy of the repo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
_SKIP = {".venv", ".git", ".snakemake", "mlruns", "mlartifacts", "__pycache__", ".pytest_cache"}
# stage outputs: at the top level (models/, reports/) and under data/, not src/cnnlab/models/
_OUTPUTS = {"prepared", "augmented", "encodings", "features", "aligned", "models", "reports", "benchmarks", "dvc.lock"}


def run_env(tmp: Path, **extra: str) -> dict[str, str]:
    """Environment for subprocesses: this venv first on PATH, MLflow in a private sqlite store."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
    env.pop("CNNLAB_CONF", None)
    env.update(extra)
    return env


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 1800, check: bool = True):
    """Run a command, returning the CompletedProcess; on unexpected failure show its output."""
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {res.returncode}\n--- stdout\n{res.stdout[-4000:]}\n"
                             f"--- stderr\n{res.stderr[-4000:]}")
    return res


def stage(name: str, *overrides: str) -> list[str]:
    """The command line of a pipeline stage."""
    return [sys.executable, "-m", f"cnnlab.stages.{name}", *overrides]


def copy_repo(dst: Path) -> Path:
    """Copy the working tree (sources, configs, raw data; no outputs, no venv) to ``dst``."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        skip = {n for n in names if n in _SKIP or n.endswith(".egg-info")}
        if Path(directory) in (REPO, REPO / "data"):
            skip |= {n for n in names if n in _OUTPUTS}
        if Path(directory) == REPO / ".dvc":        # the committed config only: no cache, no local remote
            skip |= {n for n in names if n in ("cache", "tmp", "config.local")}
        if Path(directory) == REPO:
            skip |= {n for n in names if n.startswith("mlflow.db")}
        if Path(directory) == REPO / "logs":
            skip |= {n for n in names if n != ".gitkeep"}
        return skip

    shutil.copytree(REPO, dst, ignore=ignore)
    return dst


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    return copy_repo(tmp_path / "repo")


@pytest.fixture(scope="session")
def tiny_digits(tmp_path_factory) -> Path:
    """A prepared tiny digits folder (12 images per class), made by the real prepare stage."""
    tmp = tmp_path_factory.mktemp("tiny_digits")
    out = tmp / "prepared"
    run(stage("prepare", "debug=tiny", f"paths.prepared={out}"), REPO, run_env(tmp))
    return out


@pytest.fixture
def hydra_cfg():
    """Compose the real config (with overrides) without running an app."""
    from hydra import compose, initialize_config_dir

    def _compose(*overrides: str):
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))

    return _compose


# `make test` runs two pytest-xdist workers, which take tests in collection order: the longest ones
# go first, so that neither worker is left running one of them alone at the end.
_LONGEST_FIRST = ("test_pipeline.py::test_snakemake", "test_pipeline.py::test_dvc", "test_dvc_user_data.py",
                  "test_determinism.py", "test_benchmark_faces.py", "test_experiments.py", "test_reruns.py")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        return next((i for i, key in enumerate(_LONGEST_FIRST) if key in item.nodeid), len(_LONGEST_FIRST))

    items.sort(key=rank)   # stable: the rest keep their order
