"""The layout of DESIGN.md, held by the imports.

``hub/`` is the core everything else stands on, so outside ``hub/tools/`` it imports no layer
above it; only the tools (the CLI and the dev stack), the tests and the benchmarks import the
worker and the simulators. Imports are read with :mod:`ast`, wherever they are: at the top,
inside functions, under ``TYPE_CHECKING``, relative ones resolved.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: The layers above ``hub``, and the tools that import them: ``hub`` outside ``hub/tools``
#: imports none of them.
ABOVE_HUB = frozenset(
    {"adapters", "activities", "workflows", "api", "worker", "simulators", "hub.tools"}
)
#: What only the tools, the tests and the benchmarks may start.
RUNNERS = frozenset({"worker", "simulators"})
TOOLS = "hub/tools/"
#: Where anything may be imported (and ``worker.py``, the worker, which registers everything).
MAY_IMPORT_RUNNERS = (TOOLS, "tests/", "bench/")
#: Folders that hold no code of the project (hidden ones, ``.venv`` included, are skipped too).
NOT_CODE = frozenset({"__pycache__", "data", "build", "node_modules"})


def python_files(top: Path) -> list[Path]:
    """The project's Python files under ``top``, without descending into virtualenvs or data."""
    found = []
    for folder, subfolders, files in os.walk(top):
        subfolders[:] = [d for d in subfolders if not d.startswith(".") and d not in NOT_CODE]
        found.extend(Path(folder, name) for name in files if name.endswith(".py"))
    return sorted(found)


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def module_of(path: Path) -> tuple[str, bool]:
    """The dotted name of a file, and whether it is a package (``__init__.py``)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def imported_modules(source: str, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """``(line, module)`` for every module the source imports. ``from m import n`` gives ``m``
    and ``m.n`` (``n`` may be a submodule); ``importlib.import_module`` and ``__import__`` of a
    constant string count as imports too."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            yield node.lineno, name
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{name}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            yield node.lineno, node.args[0].value


def imports_of(path: Path) -> Iterator[tuple[int, str]]:
    module, is_package = module_of(path)
    return imported_modules(path.read_text(encoding="utf-8"), module, is_package)


def violations(paths: list[Path], forbidden: frozenset[str]) -> list[str]:
    return sorted(
        {
            f"{relative(path)}:{line} imports {name}"
            for path in paths
            for line, name in imports_of(path)
            if any(name == module or name.startswith(f"{module}.") for module in forbidden)
        }
    )


def core_files() -> list[Path]:
    """``hub/`` without ``hub/tools/``."""
    return [path for path in python_files(ROOT / "hub") if not relative(path).startswith(TOOLS)]


def test_the_import_reader_sees_every_form_of_import() -> None:
    source = """
from __future__ import annotations
import os, worker
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from adapters.files import Files
def later():
    import simulators.usage
    from . import sibling
    from ..tools import cli
    importlib.import_module("workflows.saga")
    __import__("api")
"""
    found = {name for _, name in imported_modules(source, "hub.datasets.base", False)}
    assert {"os", "worker", "adapters.files", "simulators.usage", "workflows.saga", "api"} <= found
    assert {"hub.datasets", "hub.datasets.sibling", "hub.tools", "hub.tools.cli"} <= found
    package = {name for _, name in imported_modules("from . import base", "hub.datasets", True)}
    assert package == {"hub.datasets", "hub.datasets.base"}


def test_the_scan_covers_the_core_and_leaves_out_the_tools() -> None:
    core = {relative(path) for path in core_files()}
    assert {"hub/settings.py", "hub/alarms.py", "hub/datasets/base.py"} <= core
    assert "hub/reconciliation/engine.py" in core
    assert not any(path.startswith(TOOLS) for path in core)


def test_hub_imports_nothing_above_it() -> None:
    assert violations(core_files(), ABOVE_HUB) == []


def test_only_the_tools_tests_and_bench_import_the_worker_or_the_simulators() -> None:
    checked = []
    for path in python_files(ROOT):
        name = relative(path)
        if name == "worker.py" or name.startswith(MAY_IMPORT_RUNNERS):
            continue
        checked.append(path)
    assert {"api/main.py", "activities/exports.py", "simulators/usage.py"} <= set(
        map(relative, checked)
    )
    simulators = [path for path in checked if relative(path).startswith("simulators/")]
    others = [path for path in checked if path not in simulators]
    # The simulators are one program: they import each other, never the worker.
    assert violations(simulators, frozenset({"worker"})) == []
    assert violations(others, RUNNERS) == []


def test_the_entry_points_name_modules_that_exist() -> None:
    """The ``hub`` script and the Makefile's ``python -m`` targets follow modules that move."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    targets = {target.split(":")[0] for target in scripts.values()}
    targets |= set(re.findall(r"python -m ([\w.]+)", (ROOT / "Makefile").read_text()))
    assert "hub.tools.devstack" in targets
    assert [name for name in sorted(targets) if importlib.util.find_spec(name) is None] == []
