"""The package layering of docs/ARCHITECTURE.md: a module imports only from its own layer or below."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "cnnlab"

# Lower number = lower layer. Keys are top-level modules/packages of cnnlab, or dotted modules
# that sit lower than their package (a leaf with no cnnlab imports of its own).
LAYERS = {
    "__init__": 0, "io": 0, "ops": 0, "config": 0, "checkpoint": 0, "interrupts": 0, "track": 0,
    "workflow_io": 0, "workflow_guard": 0, "bench.report": 0,
    "models": 1, "summary": 1,
    "data": 2, "augment": 2,
    "tasks": 3, "evaluate": 3, "predict": 3, "model_registry": 3, "_pyfunc_model": 3,
    "face": 4, "detect": 4, "segment": 4, "inside": 4, "style": 4,
    "stages": 5, "cli": 5, "bench": 5, "dag": 5, "stale": 5,
}


def layer(dotted: str) -> int:
    """The layer of ``a.b.c`` (relative to cnnlab): the longest key that prefixes it."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in LAYERS:
            return LAYERS[key]
    raise KeyError(f"cnnlab.{dotted} has no layer in tests/test_layering.py (add it, and to docs/ARCHITECTURE.md)")


def imports(path: Path, root: Path = SRC) -> list[tuple[str, int]]:
    """(``a.b`` relative to cnnlab, line) of every cnnlab import in ``path`` (under ``root``), at any depth."""
    rel = path.relative_to(root).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                mod = base + (node.module.split(".") if node.module else [])
                names = [".".join(mod + [a.name]) if not node.module else ".".join(mod) for a in node.names]
            elif node.module and node.module.split(".")[0] == "cnnlab":
                rest = node.module.split(".")[1:]
                names = [".".join(rest + [a.name]) if not rest else ".".join(rest) for a in node.names]
            else:
                continue
            found += [(n, node.lineno) for n in names if n]
        elif isinstance(node, ast.Import):
            found += [(a.name.split(".", 1)[1], node.lineno) for a in node.names
                      if a.name.startswith("cnnlab.")]
    return found


def test_every_module_imports_only_its_layer_or_below():
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        me = ".".join(path.relative_to(SRC).with_suffix("").parts)
        for target, line in imports(path):
            if layer(target) > layer(me):
                bad.append(f"{path.relative_to(SRC.parent)}:{line} ({me}, layer {layer(me)}) imports "
                           f"cnnlab.{target} (layer {layer(target)})")
    assert not bad, "imports against the layering of docs/ARCHITECTURE.md:\n" + "\n".join(bad)


def test_the_layering_check_catches_an_upward_import(tmp_path):
    """The check itself: a model module importing a stage (relative or absolute, even inside a
    function) is found and is upward; bench.report is a leaf below its package."""
    bad = tmp_path / "models" / "bad.py"
    bad.parent.mkdir()
    bad.write_text("from ..stages._app import stage\n\ndef f():\n    import cnnlab.face.cli\n")
    found = imports(bad, root=tmp_path)
    assert [t for t, _ in found] == ["stages._app", "face.cli"]
    assert all(layer(t) > layer("models.bad") for t, _ in found)
    assert layer("bench.report") == 0 and layer("bench.zoo_speed") == 5
