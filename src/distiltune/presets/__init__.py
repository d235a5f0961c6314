"""Dataset presets: named recipes that carry a source, columns, label names, max length and metric.

Presets are YAML files in ``presets/`` (one per dataset, litgpt's config_hub idea). ``source`` is a hub id
``name[:config]`` or ``bundled:<folder>`` for data shipped inside the package (``resources/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    source: str
    text_column: str
    label_column: str
    label_names: list[str]
    max_length: int
    metric: str
    text_pair_column: str | None = None
    multi_label: bool = False
    """The dataset gives each text a set of labels (``data.multi_label``)."""
    long_text: str = "head"
    """How the preset's runs read texts longer than ``max_length`` unless ``data.long_text`` says otherwise
    (``data.long_text``: head, tail, head_tail or chunks)."""

    def resolved_source(self) -> str:
        """The hub id, or the absolute path of bundled data."""
        if self.source.startswith("bundled:"):
            return str(bundled_path(self.source.removeprefix("bundled:")))
        return self.source


def bundled_path(name: str) -> Path:
    return Path(str(resources.files("distiltune") / "resources" / name))


@cache
def presets() -> dict[str, Preset]:
    found = {}
    for entry in sorted(resources.files("distiltune").joinpath("presets").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            name = entry.name.removesuffix(".yaml")
            found[name] = Preset(name=name, **yaml.safe_load(entry.read_text(encoding="utf-8")))
    return found


def get_preset(name: str) -> Preset | None:
    return presets().get(name.lower().replace("_", "-")) or presets().get(name.lower())
