"""Every training task honours trainer=gpu / trainer=ddp: configs compose, the speed options are
applied or named as ignored, style transfer takes its device, and the prepared device script runs."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
import torch
from conftest import REPO

from cnnlab.stages._app import compose

ENTRIES = ["config", "detect", "segment"]


@pytest.mark.parametrize("trainer", ["gpu", "ddp"])
@pytest.mark.parametrize("entry", ENTRIES)
def test_trainer_group_composes_for_every_training_entry(entry, trainer):
    cfg = compose(f"trainer={trainer}", "trainer.accelerator=cpu", config_name=entry)
    assert cfg.trainer.accelerator == "cpu" and cfg.trainer.precision == "bf16-mixed"
    assert cfg.trainer.speed.channels_last is True
    assert (cfg.trainer.get("strategy") == "ddp") == (trainer == "ddp")


def test_segment_keeps_its_own_epochs_under_trainer_gpu():
    assert compose("trainer=gpu", config_name="segment").trainer.max_epochs == 30


def test_ignored_speed_options_are_named_in_one_line(caplog):
    from cnnlab.tasks.fit import warn_unused_speed

    cfg = compose("trainer=gpu", config_name="segment")
    with caplog.at_level(logging.WARNING, logger="cnnlab.tasks.fit"):
        ignored = warn_unused_speed(cfg, "segmenter training", applied=("channels_last",))
    assert ignored == ["data_on_device", "gpu_augment"]
    assert len(caplog.records) == 1 and "segmenter training" in caplog.text and "channels_last" not in caplog.text
    assert warn_unused_speed(compose(config_name="segment"), "segmenter training") == []


def test_style_device_is_validated_and_the_transfer_returns_host_images():
    from cnnlab.style.features import build
    from cnnlab.style.run import resolve_device, settings
    from cnnlab.style.transfer import transfer

    assert resolve_device("cpu") == "cpu" and resolve_device(None) == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="style.device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")
    torch.manual_seed(0)
    net = build("random", sizes=[3, 5], filters=4, gain=16.0, seed=0)
    s = settings({"steps": 2, "optimizer": "lbfgs"}, net)
    res = transfer(torch.rand(3, 12, 12), torch.rand(3, 12, 12), net, s, progress=False, device="cpu")
    assert res.image.device.type == "cpu" and res.image.shape == (3, 12, 12) and len(res.history) >= 1


@pytest.mark.slow
def test_gpu_check_script_runs_every_part_on_cpu(tmp_path):
    env = {"OUT": str(tmp_path), "PATH": f"{sys.prefix}/bin:/usr/bin:/bin", "HOME": str(tmp_path)}
    res = subprocess.run(["bash", "scripts/gpu_check.sh", "--device", "cpu", "--tiny"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    text = (tmp_path / "docs" / "BENCHMARKS.md").read_text()
    section = text.split("<!-- bench:gpu_check -->")[1].split("<!-- /bench:gpu_check -->")[0]
    for row in ("| 32-true |", "| localiser |", "| landmarks |", "| windows |", "| unet |", "style transfer",
                "trainer=ddp devices=1", "still to be measured"):
        assert row in section, row
    assert "FAILED" not in section
    assert (tmp_path / "gpu_check.log").is_file() and not (tmp_path / "gpu_check_work").exists()
