"""Benchmark footers: the command a section names can be pasted back into a shell."""

from __future__ import annotations

import shlex

from cnnlab.bench.report import bench_command, command_line, write_section


def test_footer_command_quotes_arguments_a_shell_would_split():
    cmd = bench_command("cnnlab.bench.gpu_check", ["--tiny", "--note", "CPU run; no GPU (shared)"])
    assert cmd == "python -m cnnlab.bench.gpu_check --tiny --note 'CPU run; no GPU (shared)'"
    assert shlex.split(cmd)[-1] == "CPU run; no GPU (shared)"


def test_a_bench_run_as_a_file_is_named_as_its_module():
    cmd = command_line(["/home/x/repo/src/cnnlab/bench/zoo_speed.py", "--models", "resnet18"])
    assert cmd == "python -m cnnlab.bench.zoo_speed --models resnet18"


def test_section_is_replaced_whole_with_its_footer(tmp_path):
    path = tmp_path / "B.md"
    write_section("demo", "## Demo\n\nfirst\n", command="python -m x --a 'b c'", path=path)
    write_section("demo", "## Demo\n\nsecond\n", command="python -m x --a 'b c'", path=path)
    text = path.read_text()
    assert text.count("<!-- bench:demo -->") == 1 and "first" not in text and "second" in text
    assert "*Command:* `python -m x --a 'b c'`" in text
