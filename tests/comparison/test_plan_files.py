"""compare.yaml files written by earlier versions load as a typed plan, keep their YAML shape when written back, and
``report`` and ``compare --resume`` work on them (fixtures: ../fixtures/old_compare, made by its make_old_compare.py
with the commits named there; the runs come from ../fixtures/old_runs)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

import distiltune
from distiltune.comparison.plan import (
    PLAN_FILE,
    ComparePlan,
    extend_plan,
    load_plan,
    load_records,
    plan_records,
    write_plan,
)
from distiltune.errors import ConfigError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
OLD_COMPARE = FIXTURES / "old_compare"
OLD_RUNS = FIXTURES / "old_runs"


#: data keys added after tests/fixtures/old_compare was written (multi-label data, headerless files).
DATA_KEYS_ADDED_SINCE = ("label_names_file", "multi_label", "label_separator", "label_columns", "column_names")


def key_order(value: Any) -> Any:
    """The mapping keys of a YAML document in order, nested: what "the same shape" means."""
    if isinstance(value, dict):
        return [(key, key_order(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [key_order(item) for item in value]
    return None


def comparison_from(fixture: str, tmp_path: Path, model: str, runs: dict[str, str]) -> Path:
    """A comparison folder holding the fixture's plan (its model and dataset pointed at this machine's files) and
    copies of the old run directories under the names the plan gives them."""
    plan = yaml.safe_load((OLD_COMPARE / fixture / PLAN_FILE).read_text())
    plan["config"]["model"]["name"] = model
    plan["config"]["data"]["dataset"] = str(FIXTURES / "tiny.csv")
    for entry in plan.get("models", []):
        entry["name"] = model
    folder = tmp_path / fixture
    folder.mkdir()
    (folder / PLAN_FILE).write_text(yaml.safe_dump(plan, sort_keys=False))
    for name, source in runs.items():
        shutil.copytree(OLD_RUNS / source, folder / name)
    return folder


def test_a_plan_of_the_models_grid_loads_typed_and_is_written_back_in_its_shape(tmp_path: Path) -> None:
    text = (OLD_COMPARE / "models_grid" / PLAN_FILE).read_text()
    plan = load_plan(OLD_COMPARE / "models_grid")
    assert isinstance(plan, ComparePlan)
    assert plan.methods == ["full", "tfidf"] and plan.explicit_methods == ["full", "tfidf"] and plan.seeds == [42]
    (entry,) = plan.models
    assert (entry.label, entry.run_prefix, entry.max_length, entry.refused, entry.error) == (
        "tiny",
        "tiny_",
        16,
        {},
        None,
    )
    assert plan.config.data.split_seed == 42 and plan.config.train.lr == pytest.approx(1e-3)
    assert (plan.statistics.metric, plan.statistics.test, plan.statistics.alpha) == ("f1_macro", "welch-t", 0.05)
    assert [record.name for record in plan_records(plan)] == ["tiny_full_seed42", "tfidf_seed42"]

    write_plan(tmp_path, plan)
    written, original = yaml.safe_load((tmp_path / PLAN_FILE).read_text()), yaml.safe_load(text)
    # Keys the config gained after the fixture was written come last in their section, at their defaults.
    added = {key: written["config"]["data"].pop(key) for key in DATA_KEYS_ADDED_SINCE}
    assert added == dict.fromkeys(DATA_KEYS_ADDED_SINCE)
    assert written == original
    assert key_order(written) == key_order(original)  # same sections, keys and order


def test_a_plan_written_before_the_models_grid_loads_as_one_model_without_run_prefixes(tmp_path: Path) -> None:
    raw = yaml.safe_load((OLD_COMPARE / "before_models" / PLAN_FILE).read_text())
    assert not {"models", "explicit_methods", "statistics"} & set(raw)
    plan = load_plan(OLD_COMPARE / "before_models")
    (entry,) = plan.models
    assert (entry.label, entry.name, entry.run_prefix, entry.max_length) == (
        "encoder",
        raw["config"]["model"]["name"],
        "",
        16,
    )
    assert plan.explicit_methods == ["full", "tfidf"]  # before the defaults, every method was named
    assert plan.statistics.metric == "f1_macro" and plan.statistics.min_seeds == 3
    assert [record.name for record in plan_records(plan)] == ["full_seed42", "tfidf_seed42"]
    # Written back, it is today's plan: the old keys as they were, then the ones it lacked.
    write_plan(tmp_path, plan)
    written = yaml.safe_load((tmp_path / PLAN_FILE).read_text())
    assert list(written) == [
        "config",
        "method_options",
        "methods",
        "explicit_methods",
        "models",
        "seeds",
        "statistics",
        "created",
    ]
    assert list(written["config"]) == list(raw["config"])  # data, model, train, run: no method section
    for section, values in raw["config"].items():  # every old key keeps its value and place; newer keys are added
        kept = {key: value for key, value in written["config"][section].items() if key in values}
        assert kept == values and list(kept) == list(values), section
    assert load_plan(tmp_path).model_dump() == plan.model_dump()


def test_report_and_resume_work_on_a_plan_of_the_models_grid(
    tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = comparison_from(
        "models_grid", tmp_path, tiny_model, {"tiny_full_seed42": "completed_full", "tfidf_seed42": "completed_tfidf"}
    )
    report = distiltune.render_report(folder)
    assert [(row["model"], row["method"], row["status"]) for row in report.table] == [
        ("tiny", "full", "ok"),
        (None, "tfidf", "ok"),
    ]
    assert (folder / "report.html").is_file()

    # --resume plans the added method next to the completed runs, which it reuses.
    plan = extend_plan(folder, None, None, "untuned", None)
    assert plan.methods == ["full", "tfidf", "untuned"]
    assert [(r.name, r.status) for r in load_records(folder, plan)] == [
        ("tiny_full_seed42", "completed"),
        ("tiny_untuned_seed42", "pending"),
        ("tfidf_seed42", "completed"),
    ]
    from distiltune import training

    trained: list[str] = []
    real_train = training.train

    def recording_train(config: Any = None, overrides: Any = None, **kwargs: Any) -> Any:
        trained.append(config.run.name)
        return real_train(config, overrides, **kwargs)

    monkeypatch.setattr(training, "train", recording_train)
    resumed = distiltune.compare(resume=folder, methods="untuned")
    assert trained == ["tiny_untuned_seed42"]
    assert {r.name: r.reused for r in resumed.runs} == {
        "tiny_full_seed42": True,
        "tiny_untuned_seed42": False,
        "tfidf_seed42": True,
    }
    assert yaml.safe_load((folder / PLAN_FILE).read_text())["methods"] == ["full", "tfidf", "untuned"]


def test_cli_report_reads_a_plan_written_before_the_models_grid(tiny_model: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from distiltune.cli import app

    folder = comparison_from(
        "before_models", tmp_path, tiny_model, {"full_seed42": "completed_full", "tfidf_seed42": "completed_tfidf"}
    )
    result = CliRunner().invoke(app, ["report", str(folder)])
    assert result.exit_code == 0, result.output
    assert (folder / "report.html").is_file() and (folder / "comparison.md").is_file()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda plan: plan["config"]["train"].update(lrr=1),
            "compare.yaml: train: unknown key 'lrr'. Did you mean 'lr'?",
        ),
        (lambda plan: plan["models"][0].update(colour="red"), "compare.yaml: models: unknown key 'colour'."),
        (
            lambda plan: plan["models"][0]["settings"].update({"train.seed": 3}),
            "compare.yaml: model /tmp/oldcompare/grid/encoder: 'train.seed' cannot be set per model.",
        ),
        (lambda plan: plan.update(seeds="many"), "compare.yaml: seeds must be a list, got 'many'."),
        (lambda plan: plan["statistics"].update(alpha=2), "statistics.alpha must be in (0, 1), got 2."),
    ],
)
def test_a_broken_plan_is_a_one_line_error_naming_the_file_and_key(tmp_path: Path, change: Any, message: str) -> None:
    plan = yaml.safe_load((OLD_COMPARE / "models_grid" / PLAN_FILE).read_text())
    change(plan)
    (tmp_path / PLAN_FILE).write_text(yaml.safe_dump(plan, sort_keys=False))
    with pytest.raises(ConfigError) as caught:
        load_plan(tmp_path)
    assert "\n" not in str(caught.value) and message in str(caught.value)
