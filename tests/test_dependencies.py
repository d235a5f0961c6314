"""Every third-party package the library imports is declared in pyproject.toml: in ``dependencies``, or in the
optional extra that the importing feature asks for (onnx, tracking)."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent


def imported_top_level_modules() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "src" / "distiltune").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"distiltune"}


def declared_distributions() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for name, extra in project["optional-dependencies"].items():
        if name != "dev":  # the test tools are not the library's
            requirements += extra
    return {normalise(re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]) for requirement in requirements}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_package_is_declared() -> None:
    distributions = packages_distributions()
    missing = {}
    for module in sorted(imported_top_level_modules()):
        # A module the machine lacks (an optional tracker) is named after its distribution.
        names = {normalise(name) for name in distributions.get(module, [module])}
        if not names & declared_distributions():
            missing[module] = sorted(names)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
