"""Write one benchmark's section of docs/BENCHMARKS.md without touching the others."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import shlex
import sys
from pathlib import Path

DEFAULT_PATH = Path("docs/BENCHMARKS.md")
_HEADER = "# Benchmarks\n\nMeasured figures only; each section names its machine, command and date.\n"


def machine_description() -> str:
    """A one-line description of this machine (CPU model, cores, Python, torch)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, {dev}, Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def command_line(argv: list[str] | None = None) -> str:
    """This process's command as a user would type it: a benchmark run as a file
    (``python .../src/cnnlab/bench/x.py``) is named as its module (``python -m cnnlab.bench.x``), so
    the footer never holds a path of the machine that ran it."""
    argv = list(sys.argv if argv is None else argv)
    head = argv[0] if argv else ""
    match = re.search(r"(?:^|/)(cnnlab/(?:[A-Za-z0-9_]+/)*[A-Za-z0-9_]+)\.py$", head)
    if match:
        return bench_command(match.group(1).replace("/", "."), argv[1:])
    return shlex.join(["python", *argv])


def bench_command(module: str, argv: list[str] | None = None) -> str:
    """``python -m <module> <arguments>``, each argument quoted as a shell needs it, so that a footer
    can be pasted back into a shell. ``argv``: the arguments (default: this process's)."""
    return shlex.join(["python", "-m", module, *(sys.argv[1:] if argv is None else argv)])


def write_section(key: str, body: str, command: str | None = None, path: Path | str = DEFAULT_PATH) -> Path:
    """Replace (or append) the section ``key`` in the benchmarks file, atomically.

    Args:
        key: a stable identifier; the section sits between ``<!-- bench:key -->`` markers.
        body: markdown, starting with its own ``## Title`` line.
        command: the command that produced it (defaults to this process's argv).
        path: the markdown file.
    """
    path = Path(path)
    command = command or command_line()
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    block = (f"<!-- bench:{key} -->\n{body.rstrip()}\n\n"
             f"*Machine:* {machine_description()}  \n*Command:* `{command}`  \n*Date:* {stamp}\n"
             f"<!-- /bench:{key} -->\n")
    text = path.read_text() if path.exists() else _HEADER
    pattern = re.compile(rf"<!-- bench:{re.escape(key)} -->.*?<!-- /bench:{re.escape(key)} -->\n", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path
