"""The ``cnnlab`` console script (as a real subprocess and in-process) and the zoo speed benchmark."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab import cli
from cnnlab.bench import zoo_speed
from cnnlab.models import list_models

_SCRIPT = shutil.which("cnnlab", path=str(Path(sys.executable).parent)) or shutil.which("cnnlab")


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


def test_console_script_prints_course_table():
    if _SCRIPT is None:
        pytest.skip("the cnnlab console script is not installed")
    proc = _run(_SCRIPT, "summary", "course_lenet_example")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split("|")[0].strip(): [c.strip() for c in line.split("|")] for line in proc.stdout.splitlines()
            if "|" in line}
    assert rows["features.conv1"][2:5] == ["8×28×28", "6,272", "608"]
    assert rows["features.conv2"][2:5] == ["16×10×10", "1,600", "3,216"]
    assert [rows[k][4] for k in ("pre_logits.fc3", "pre_logits.fc4", "head")] == ["48,120", "10,164", "850"]
    assert "features.relu1" not in rows  # hidden unless --all-layers
    assert "Total params: 62,958" in proc.stdout


def test_module_entry_point_unknown_model_exits_2():
    proc = _run(sys.executable, "-m", "cnnlab.cli", "summary", "no_such_net")
    assert proc.returncode == 2
    assert "unknown model 'no_such_net'" in proc.stderr
    assert "lenet5" in proc.stderr and "course_lenet_example" in proc.stderr
    assert proc.stdout == ""


def test_summary_input_and_options(capsys):
    assert cli.main(["summary", "course_inception_naive_5x5", "--input", "8x10x10", "--all-layers"]) == 0
    out = capsys.readouterr().out
    # in_chans follows the input: 10·10·32 outputs × 5·5·8 multiplications each.
    assert f"Total multiply-adds per example: {10 * 10 * 32 * 5 * 5 * 8:,}" in out
    assert "ReLU" in out
    assert cli.main(["summary", "course_lenet_example", "--num-classes", "5"]) == 0
    assert re.search(r"^head\s*\|.*\|\s*5\s*\|\s*425\s*\|", capsys.readouterr().out, re.M)


@pytest.mark.parametrize("shape, message", [("3x32", "cannot run on input 3x32"), ("3xa", "must look like CxHxW")])
def test_bad_input_shape_exits_2(capsys, shape, message):
    assert cli.main(["summary", "lenet5", "--input", shape]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_help_does_not_import_torch():
    code = "import sys, cnnlab.cli as c; print(c.build_parser().format_help()); print('torch' in sys.modules)"
    proc = _run(sys.executable, "-c", code)
    assert proc.stdout.splitlines()[-1] == "False", proc.stderr
    assert "summary" in proc.stdout


def _cheapest_torchvision_model() -> str | None:
    names = zoo_speed.torchvision_models()
    for preferred in ("mobilenet_v2", "resnet18"):  # the quickest to build and run on a CPU
        if preferred in names:
            return preferred
    return names[0] if names else None


def test_zoo_speed_tiny_run(tmp_path):
    name = _cheapest_torchvision_model()
    if name is None:
        pytest.skip("no registered model names a torchvision counterpart yet")
    out = tmp_path / "BENCH.md"
    assert zoo_speed.main(["--models", name, "--repeats", "1", "--warmup", "0", "--batch-size", "1",
                           "--output", str(out)]) == 0
    text = out.read_text()
    assert "<!-- bench:zoo_speed -->" in text and "--models " + name in text
    row = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    ours_ms, tv_ms, ratio, paired, diff = (float(c) for c in cells[4:9])
    # one repetition: the fastest step is the only step, so both ratios are ours / tv
    assert ours_ms > 0 and tv_ms > 0 and ratio == pytest.approx(ours_ms / tv_ms, rel=0.01, abs=1e-3)
    assert paired == pytest.approx(ratio, abs=1e-3)
    assert diff < 1e-4  # the same weights give the same logits


def test_zoo_speed_rejects_models_without_torchvision(tmp_path, capsys):
    assert "lenet5" in list_models()
    with pytest.raises(SystemExit) as exc:
        zoo_speed.main(["--models", "lenet5", "--output", str(tmp_path / "B.md")])
    assert exc.value.code == 2 and "no torchvision counterpart registered for lenet5" in capsys.readouterr().err
    assert not (tmp_path / "B.md").exists()
