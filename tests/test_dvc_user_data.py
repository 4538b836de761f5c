"""A user's own image folder under DVC (`dvc add`) feeds `prepare`; push/pull restore it.

Real git + DVC in a scratch copy of the repository, whose committed `.dvc/config` makes it a DVC
repository as cloned; the default remote (a folder in $HOME) is overridden in `.dvc/config.local`,
as a team would.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
from conftest import BIN, copy_repo, run, run_env
from PIL import Image

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


def _images(root: Path, per_class: int = 8) -> None:
    rng = np.random.default_rng(0)
    for label in ("circle", "square"):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            a = (rng.random((16, 16)) * 255).astype(np.uint8)
            Image.fromarray(a).save(root / label / f"{i:02d}.png")


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode() + f.read_bytes())
    return h.hexdigest()


def test_dvc_add_folder_feeds_prepare_and_round_trips_through_the_remote(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    env = run_env(tmp_path)
    dvc = str(BIN / "dvc")
    run(["git", "init", "-q"], repo, env)
    (repo / ".dvc/config.local").write_text(f"['remote \"local\"']\n    url = {tmp_path / 'remote'}\n")
    assert run([dvc, "remote", "list"], repo, env).stdout.split()[0] == "local"
    _images(repo / "data/raw/mine")
    run([dvc, "add", "-q", "data/raw/mine"], repo, env)
    assert (repo / "data/raw/mine.dvc").is_file()
    cmd = "python -m cnnlab.stages.prepare data=folder data.root=data/raw/mine data.name=mine data.channels=1"
    run([dvc, "stage", "add", "-q", "-n", "prepare-mine", "-d", "data/raw/mine", "-o", "data/prepared/mine", cmd],
        repo, env)
    run([dvc, "repro", "-q", "prepare-mine"], repo, env)
    prepared = _tree_digest(repo / "data/prepared/mine")
    assert (repo / "data/prepared/mine/manifest.csv").read_text().count("\n") == 17   # header + 16 images
    run([*GIT, "add", "-A"], repo, env)
    run([*GIT, "commit", "-qm", "mine"], repo, env)
    targets = ["data/raw/mine.dvc", "prepare-mine"]   # the repository's own pipeline has not run here
    run([dvc, "push", "-q", *targets], repo, env)

    # a second clone: git brings dvc.yaml/dvc.lock/mine.dvc, dvc pull the images and the prepared set
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    shutil.copy(repo / ".dvc/config.local", clone / ".dvc/config.local")
    run([dvc, "pull", "-q", *targets], clone, env)
    assert _tree_digest(clone / "data/raw/mine") == _tree_digest(repo / "data/raw/mine")
    assert _tree_digest(clone / "data/prepared/mine") == prepared
    assert "up to date" in run([dvc, "status", *targets], clone, env).stdout
    again = run([dvc, "repro", "prepare-mine"], clone, env)
    assert "Running stage" not in again.stdout + again.stderr

    # the user changes an image: DVC reruns prepare, and it is byte-identical to a fresh prepare
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(clone / "data/raw/mine/circle/00.png")
    assert "prepare-mine" in run([dvc, "status", *targets], clone, env).stdout
    run([dvc, "repro", "-q", "prepare-mine"], clone, env)
    first = _tree_digest(clone / "data/prepared/mine")
    assert first != prepared
    run([dvc, "repro", "-q", "-f", "prepare-mine"], clone, env)
    assert _tree_digest(clone / "data/prepared/mine") == first          # same inputs, same bytes
