"""What a stage reads: its source files and its Hydra files, for the DAG tools.

Snakemake's rules (through ``workflow/rules/common.smk``) and ``cnnlab.dag`` ask this module,
so neither parses Hydra nor lists code by hand:

- :func:`import_closure` is every file of ``src/cnnlab`` that ``python -m cnnlab.stages.<name>``
  can import: the stage module, each ``cnnlab`` module it imports (at module level or inside a
  function: stages import their work lazily), recursively, and the ``__init__.py`` of every
  package on the way (importing ``cnnlab.a.b`` runs ``cnnlab/a/__init__.py``). Found with
  :mod:`ast`, without importing anything.
- :func:`config_files` is every file of ``conf/`` that Hydra's own defaults-list computation
  loads for an entry config and a list of overrides: interpolations, ``@package`` directives,
  nested defaults (``/augment@face.augment``) and ``optional`` entries are Hydra's to resolve.
- :func:`digest` hashes files (and folders) by content; rules pass it as a ``params:`` value
  so that Snakemake's params trigger sees an edited source or config file without relying on
  modification times (which ``dvc commit``/``dvc pull`` rewrite).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

PACKAGE = "cnnlab"


def _default_src() -> Path:
    """The work tree's ``src/cnnlab`` (what the DAG tools hash), else this package's folder."""
    here = Path.cwd() / "src" / PACKAGE
    return here.resolve() if here.is_dir() else Path(__file__).resolve().parent


SRC = _default_src()


def _module_file(module: str, src: Path) -> Path | None:
    """``src/cnnlab/a/b.py`` or ``src/cnnlab/a/b/__init__.py`` for ``cnnlab.a.b``; None if neither."""
    parts = module.split(".")[1:]
    base = src.joinpath(*parts)
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _imports(path: Path, module: str) -> set[str]:
    """Absolute names of the ``cnnlab`` modules ``path`` imports (any depth, relative resolved)."""
    is_pkg = path.name == "__init__.py"
    package = module if is_pkg else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            found.add(stem)
            # `from . import lenet` / `from .x import y`: y may be a module or a name in x
            found.update(f"{stem}.{a.name}" for a in node.names if a.name != "*")
    return {m for m in found if m == PACKAGE or m.startswith(PACKAGE + ".")}


MODELS = f"{PACKAGE}.models"


@functools.lru_cache(maxsize=None)
def model_families(src: Path = SRC) -> tuple[str, ...]:
    """The model-family modules ``cnnlab/models/__init__.py`` imports to register them."""
    init = src / "models" / "__init__.py"
    return tuple(sorted(m for m in _imports(init, MODELS)
                        if m.count(".") == 2 and m != f"{MODELS}.registry" and _module_file(m, src)))


@functools.lru_cache(maxsize=None)
def _closure(module: str, src: Path, families: bool) -> tuple[str, ...]:
    seen: dict[str, Path] = {}
    todo = [module]
    skip = set() if families else set(model_families(src))
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(name, src)
        if path is None:            # a name imported from a module, not a module
            continue
        seen[name] = path
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))   # parent packages
        # the zoo's __init__ registers every family; which ones a stage builds is model_code's business
        todo.extend(m for m in _imports(path, name) if not (name == MODELS and m in skip))
    return tuple(sorted(str(p) for p in seen.values()))


def model_code(names: Iterable[str], src: str | Path = SRC, relative_to: str | Path | None = None) -> list[str]:
    """Source files of the model families that define the registry ``names`` (and what they import).

    A family is found by the quoted name in its source (``@register_model("lenet5")``); a name
    no family spells out (generated ones) conservatively brings in every family.
    """
    src = Path(src).resolve()
    families = model_families(src)
    texts = {m: _module_file(m, src).read_text() for m in families}
    chosen: set[str] = set()
    for name in names:
        hits = [m for m, t in texts.items() if f'"{name}"' in t or f"'{name}'" in t]
        chosen.update(hits or families)
    files = {f for m in chosen for f in _closure(m, src, False)}
    return sorted(_rel(p, relative_to) for p in files)


@functools.lru_cache(maxsize=None)
def registry_names(src: Path = SRC, conf: Path | None = None) -> frozenset[str]:
    """Model names: each ``register*("name", ...)`` call in a family, and each ``conf/model/*.yaml``."""
    names: set[str] = set()
    for m in model_families(src):
        for node in ast.walk(ast.parse(_module_file(m, src).read_text())):
            if (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                    and "register" in getattr(node.func, "id", getattr(node.func, "attr", ""))):
                names.add(node.args[0].value)
    if conf is not None:
        names.update(p.stem for p in (conf / "model").glob("*.yaml"))
    return frozenset(names)


def import_closure(module: str, src: str | Path = SRC, relative_to: str | Path | None = None,
                   families: bool = False) -> list[str]:
    """The source files ``module`` (e.g. ``cnnlab.stages.train``) can import inside ``cnnlab``.

    Args:
        module: a dotted module name inside the ``cnnlab`` package.
        src: the package folder (``src/cnnlab``).
        families: follow ``cnnlab/models/__init__.py`` into every model family it registers.
            Off by default: a stage depends on the families of the models it builds
            (:func:`model_code`), so editing ``models/lenet.py`` does not rerun a ResNet.
        relative_to: make the paths relative to this folder (the repository root); default:
            relative to the current directory when below it, else absolute.

    Raises:
        ValueError: ``module`` is not a file under ``src``.
    """
    src = Path(src).resolve()
    if _module_file(module, src) is None:
        raise ValueError(f"{module}: no such module under {src}")
    return [_rel(p, relative_to) for p in _closure(module, src, families)]


def stage_code(stage: str, **kw) -> list[str]:
    """The import closure of ``python -m cnnlab.stages.<stage>``."""
    return import_closure(f"{PACKAGE}.stages.{stage}", **kw)


@functools.lru_cache(maxsize=None)
def _config_files(conf: str, config_name: str, overrides: tuple[str, ...]) -> tuple[str, ...]:
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.types import RunMode

    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(conf))
    defaults = loader.compute_defaults_list(config_name=config_name, overrides=list(overrides),
                                            run_mode=RunMode.RUN)
    files = []
    for d in defaults.defaults:
        if d.config_path is None:
            continue
        path = Path(conf) / f"{d.config_path}.yaml"
        if path.is_file():              # hydra/job_logging etc. come from Hydra's own package
            files.append(str(path))
    return tuple(sorted(set(files)))


def config_files(overrides: Sequence[str] = (), config_name: str = "config", conf: str | Path = "conf",
                 relative_to: str | Path | None = None) -> list[str]:
    """The files of ``conf/`` Hydra loads for ``config_name`` with ``overrides``.

    Args:
        overrides: Hydra overrides as a stage gets them (``data=digits``, ``optim.lr=0.1``).
        config_name: the entry-point config (``config`` or a stage family's own).
        conf: the config folder.
        relative_to: as for :func:`import_closure`.

    Raises:
        hydra.errors.ConfigCompositionException: an override names a config that does not exist.
    """
    conf = Path(conf).resolve()
    return [_rel(p, relative_to) for p in _config_files(str(conf), config_name, tuple(overrides))]


def _group_overrides(overrides: Sequence[str], conf: Path) -> tuple[str, ...]:
    """The overrides that can change which files Hydra loads: group choices (``data=digits``)."""
    keep = []
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+~")
        if "=" in o and (conf / key.split("@")[0].lstrip("/")).is_dir():
            keep.append(o)
    return tuple(keep)


def _strings(obj) -> Iterable[str]:
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)
    elif isinstance(obj, str):
        yield obj


def stage_deps(stage: str, overrides: Sequence[str] = (), config_name: str = "config",
               conf: str | Path = "conf", relative_to: str | Path | None = None) -> dict[str, list[str]]:
    """What ``python -m cnnlab.stages.<stage> <overrides>`` reads besides its data.

    Returns:
        ``{"code": [...], "conf": [...]}``: the stage's import closure plus the families of every
        registry model its config files or overrides name, and the Hydra files it composes (a
        group whose choice is a DVC template, ``optim=${train.lenet5.optim}``, as its folder).
    """
    conf = Path(conf).resolve()
    groups = _group_overrides(overrides, conf)
    # a choice DVC fills in at run time (`optim=${train.lenet5.optim}`): any option of the group
    open_groups = [o.split("=", 1)[0] for o in groups if "${" in o]
    files = config_files([o for o in groups if "${" not in o], config_name, conf, relative_to)
    files = sorted({f for f in files if not any(f.startswith(f"{_rel(conf / g, relative_to)}/") for g in open_groups)}
                   | {_rel(conf / g, relative_to) for g in open_groups})
    import yaml

    mentioned = {v.split("=", 1)[-1] for v in overrides}
    for f in files:
        path = Path(relative_to or ".") / f
        if path.is_file():
            node = yaml.safe_load(path.read_text()) or {}
            # the defaults list names options, whose own files are in `files`
            mentioned.update(_strings({k: v for k, v in node.items() if k != "defaults"} if isinstance(node, dict)
                                      else node))
    models = sorted(mentioned & registry_names(SRC, conf))
    code = set(stage_code(stage, relative_to=relative_to))
    builds_models = _rel(SRC / "models" / "__init__.py", relative_to) in code
    if models and builds_models:
        code.update(model_code(models, relative_to=relative_to))
    return {"code": sorted(code), "conf": files}


def _rel(path: str | Path, relative_to: str | Path | None) -> str:
    base = Path(relative_to).resolve() if relative_to else Path.cwd()
    path = Path(path)
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


@functools.lru_cache(maxsize=4096)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def digest(paths: Iterable[str | Path]) -> str:
    """A short content hash of files and folders (folders: every file below, by relative path).

    Missing paths hash as missing, so a rule's params still evaluate in a dry run before
    upstream outputs exist.
    """
    h = hashlib.sha256()
    for p in sorted(str(p) for p in paths):
        h.update(p.encode() + b"\0")
        path = Path(p)
        files = ([path] if path.is_file() else
                 sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [])
        if not path.exists():
            h.update(b"<missing>")
        for f in files:
            st = f.stat()
            h.update(os.fsencode(f.relative_to(path)) if f != path else b"")
            h.update(_file_digest(str(f), st.st_size, st.st_mtime_ns).encode())
    return h.hexdigest()[:16]


def data_root(overrides: Sequence[str] = (), config_name: str = "config", conf: str | Path = "conf") -> str | None:
    """``data.root`` of an image-folder data set as Hydra composes it (None for built-in sources)."""
    return _data_root(tuple(overrides), config_name, str(Path(conf).resolve()))


@functools.lru_cache(maxsize=None)
def _data_root(overrides: tuple[str, ...], config_name: str, conf: str) -> str | None:
    from .config import compose

    data = compose(*overrides, conf=Path(conf), config_name=config_name).data
    return str(data.root) if data.get("source") == "folder" else None
