"""Style-transfer optimisation, images and the stage: costs fall, pixels stay in range, bad input fails cleanly."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from conftest import REPO, run, run_env
from cnnlab.style.features import random_multiscale, style_weights
from cnnlab.style.images import BUILTIN, cover_crop, load_pair, read_image
from cnnlab.style.transfer import Settings, initial_image, transfer
from cnnlab.track import list_artifacts


@pytest.fixture(scope="module")
def small():
    torch.set_num_threads(1)
    net = random_multiscale(sizes=(3, 5), filters=8)
    content, style = load_pair("chelsea", "flower", 32)
    return net, content, style


def _settings(net, **kw):
    return Settings(net.defaults["content"], style_weights(net.defaults["style"]), **kw)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_cost_falls_and_pixels_stay_in_range(small, optimizer):
    net, content, style = small
    steps = []
    res = transfer(content, style, net, _settings(net, optimizer=optimizer, steps=8, frame_every=4, lr=0.05),
                   on_step=steps.append, progress=False)
    assert [r["step"] for r in res.history] == list(range(1, 9)) and steps == res.history
    assert all(b["total"] <= a["total"] for a, b in zip(res.history, res.history[1:])) or optimizer == "adam"
    assert res.history[-1]["total"] < 0.7 * res.history[0]["total"]
    assert res.image.min() >= 0 and res.image.max() <= 1 and res.image.shape == content.shape
    assert [s for s, _ in res.frames] == [0, 4, 8]


def test_clipped_after_every_step(small):
    net, content, style = small
    res = transfer(content, style, net, _settings(net, lr=5.0, steps=2), progress=False)  # a huge step
    assert res.image.min() == 0 and res.image.max() == 1


def test_initial_images():
    c = torch.full((3, 8, 8), 0.5)
    g = initial_image(c, "content_noise", 0.25, seed=0)
    assert (g - c).abs().max() <= 0.25 and not torch.equal(g, c)
    assert torch.equal(g, initial_image(c, "content_noise", 0.25, seed=0))
    n = initial_image(c, "noise", 0.25, seed=0)
    assert n.min() >= 0 and n.max() <= 1 and (n - c).abs().max() > 0.25


def test_bad_settings(small):
    net, content, style = small
    with pytest.raises(ValueError, match="style.optimizer"):
        transfer(content, style, net, _settings(net, optimizer="sgd"), progress=False)
    with pytest.raises(KeyError, match="scale3, scale5"):
        transfer(content, style, net, Settings("conv4_2", {"scale3": 1.0}), progress=False)


def test_images_builtin_and_files(tmp_path):
    assert {"astronaut", "chelsea", "coffee", "china", "flower", "brick"} <= set(BUILTIN)
    assert read_image("brick").shape[2] == 3  # grey textures become RGB
    c, s = load_pair("coffee", "astronaut", 60)
    assert c.shape == s.shape == (3, 40, 60)  # coffee is 400×600; the square style is cropped to 2:3
    assert cover_crop(np.zeros((100, 100, 3)), (40, 60)).shape == (67, 100, 3)
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(ValueError, match="notes.png: not an image"):
        read_image(bad)
    with pytest.raises(FileNotFoundError, match="built-in images"):
        read_image(tmp_path / "missing.jpg")


def test_stage_writes_pictures_and_logs_every_step(tmp_path):
    out = tmp_path / "style"
    cmd = [sys.executable, "-m", "cnnlab.stages.style_transfer", "style.content=astronaut", "style.style=brick",
           "style.size=32", "style.steps=4", "style.frame_every=2", f"style.out={out}", "style.random.filters=8",
           "threads=1"]
    run(cmd, REPO, run_env(tmp_path))
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"astronaut__brick{s}" for s in (".frames.png", ".json", ".losses.png", ".png", ".result.png")]
    hist = json.loads((out / "astronaut__brick.json").read_text())["history"]
    assert len(hist) == 4

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (r,) = client.search_runs([client.get_experiment_by_name("cnnlab").experiment_id])
    assert [m.step for m in client.get_metric_history(r.info.run_id, "J")] == [1, 2, 3, 4]
    assert set(list_artifacts(client.tracking_uri, r.info.run_id, "style")) >= {"style/astronaut__brick.png"}

    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    res = run([*cmd[:3], f"style.content={bad}", *cmd[4:6], f"style.out={tmp_path / 'none'}"], REPO,
              run_env(tmp_path), check=False)
    assert res.returncode != 0 and "bad.jpg: not an image" in res.stdout + res.stderr
    assert not (tmp_path / "none").exists()


def test_entry_configs_take_debug_tiny():
    from cnnlab.stages._app import compose

    style = compose("debug=tiny", config_name="style").style
    assert (style.steps, style.size, style.alpha, style.beta) == (3, 64, 10.0, 40.0)
    assert compose(config_name="style").style.layer_weights is None  # equal λ: 0.2 on each of five
    assert compose("debug=tiny", config_name="visualise").visualise.max_images == 60
