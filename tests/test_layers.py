"""The package's floor plan: the layers of pyproject's import-linter contract hold, nothing imports in a cycle, and
each layer imports in a clean interpreter without pulling in a layer above it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grimp
import tomllib

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src"


def contract_layers() -> list[list[str]]:
    """The layers of the contract, bottom first, each a list of module names (siblings are joined by "|" when
    independent, by ":" when one may import another)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (contract,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    return [[name.strip() for name in layer.replace(":", "|").split("|")] for layer in reversed(contract["layers"])]


def test_no_module_imports_another_that_imports_it_back() -> None:
    graph = grimp.build_graph("distiltune", exclude_type_checking_imports=True)
    modules = sorted(graph.modules)
    cycles = []
    for module in modules:
        for imported in graph.find_modules_directly_imported_by(module):
            # A package's __init__ re-exporting its own submodules is not a cycle: it is how a package is built.
            if imported.startswith(f"{module}."):
                continue
            if graph.chain_exists(importer=imported, imported=module):
                cycles.append(f"{module} -> {imported} -> ... -> {module}")
    assert not cycles, "import cycles (move the shared code down a layer):\n" + "\n".join(cycles)


def test_every_module_belongs_to_a_layer() -> None:
    layered = [module for layer in contract_layers() for module in layer]
    graph = grimp.build_graph("distiltune", exclude_type_checking_imports=True)
    top_level = {".".join(module.split(".")[:2]) for module in graph.modules} - {"distiltune"}
    # __main__ only calls the CLI; everything else must have a place in the contract.
    assert top_level - set(layered) == {"distiltune.__main__"}


def test_layers_import_bottom_up_in_a_clean_interpreter() -> None:
    layers = contract_layers()
    script = f"""
import importlib, json, pkgutil, sys
layers = {layers!r}
def modules(name):
    module = importlib.import_module(name)
    found = [name]
    if hasattr(module, "__path__"):
        found += [info.name for info in pkgutil.walk_packages(module.__path__, name + ".")]
    return found
report = []
for index, layer in enumerate(layers):
    for name in layer:
        for module in modules(name):
            importlib.import_module(module)
    above = [m for higher in layers[index + 1:] for m in higher]
    loaded = sorted(m for m in sys.modules if any(m == a or m.startswith(a + ".") for a in above))
    report.append({{"layer": layer, "pulled_in_from_above": loaded}})
print(json.dumps(report))
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SOURCE), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert [row["layer"] for row in report] == layers
    offenders = [row for row in report if row["pulled_in_from_above"]]
    assert not offenders, offenders
