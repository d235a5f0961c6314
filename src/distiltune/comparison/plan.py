"""The plan of a comparison (``compare.yaml``) and the record of each of its runs (``comparison.json``).

The plan pins everything the runs must share: the base config with ``data.split_seed`` fixed (the validation split
is carved the same way for every training seed) and one max length for every encoder run, so all of them produce
the same token ids; the methods, their options and the seeds.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from distiltune import runs
from distiltune.config import Config, flatten, load_config, parse_overrides, resolve_settings
from distiltune.errors import ConfigError, RunError
from distiltune.methods import get_method, get_method_config_class, method_names
from distiltune.modeling import model_limit

PLAN_FILE = "compare.yaml"
RESULTS_FILE = "comparison.json"
LOG_FILE = "compare.log"
#: The issue's line-up; methods not registered in this installation are left out of the default.
DEFAULT_METHODS = ("full", "lora", "prompt", "prefix", "head", "untuned", "tfidf")
DEFAULT_SEEDS = 3


@dataclass
class RunRecord:
    """One method x seed of a comparison."""

    method: str
    seed: int
    name: str
    """The run directory's name inside the comparison directory."""
    status: str = "pending"
    """completed, failed, or pending (not run yet)."""
    error: str | None = None
    reused: bool = False
    """Completed by an earlier invocation and skipped by ``--resume``."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def run_name(method: str, seed: int) -> str:
    return f"{method}_seed{seed}"


def load_plan(compare_dir: Path) -> dict[str, Any]:
    path = compare_dir / PLAN_FILE
    if not path.is_file():
        raise RunError(
            f"{compare_dir} is not a comparison directory (no {PLAN_FILE}).",
            "Pass a folder created by distiltune compare.",
        )
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def plan_records(plan: dict[str, Any]) -> list[RunRecord]:
    """One pending record per seed x method, in the order they run."""
    return [
        RunRecord(method=method, seed=seed, name=run_name(method, seed))
        for seed in plan["seeds"]
        for method in plan["methods"]
    ]


def load_records(compare_dir: Path, plan: dict[str, Any]) -> list[RunRecord]:
    """The records saved by the last invocation, with the status of each run directory re-checked."""
    saved: dict[str, dict[str, Any]] = {}
    results = compare_dir / RESULTS_FILE
    if results.is_file():
        saved = {row["name"]: row for row in runs.read_json(results).get("runs", [])}
    records = []
    for record in plan_records(plan):
        if runs.is_completed(compare_dir / record.name):
            record.status = "completed"
            record.reused = bool(saved.get(record.name, {}).get("reused"))
        elif record.name in saved and saved[record.name].get("status") == "failed":
            record.status, record.error = "failed", saved[record.name].get("error")
        records.append(record)
    return records


def new_plan(
    config: Config | str | Path | None,
    overrides: list[str] | dict[str, Any] | None,
    methods: Sequence[str] | str | None,
    seeds: int | Sequence[int] | str | None,
) -> dict[str, Any]:
    items = parse_overrides(overrides)
    if "method.name" in items:
        raise ConfigError("compare runs several methods: choose them with --methods, not method.name.")
    method_overrides = {key.split(".", 1)[1]: items.pop(key) for key in list(items) if key.startswith("method.")}
    if isinstance(config, Config):
        base = load_config(None, {**flatten(config.to_dict(), skip="method"), **items})
    else:
        base = load_config(config, items)
    base_method = {k: v for k, v in base.to_dict()["method"].items() if k != "name"}
    # Options from a --config method section apply where they fit; explicit method.* overrides must fit somewhere.
    method_options = {**base_method, **method_overrides}
    chosen = parse_methods(methods)
    for key in method_overrides:
        if not any(key in option_names(name) for name in chosen):
            raise ConfigError(
                f"method.{key} is not an option of any compared method ({', '.join(chosen)}).",
                "Check the spelling, or add the method it belongs to.",
            )
    split_seed = base.data.split_seed if base.data.split_seed is not None else base.train.seed
    data = dataclasses.replace(base.data, split_seed=split_seed)
    data = dataclasses.replace(data, max_length=shared_max_length(base, chosen, method_options))
    base = dataclasses.replace(base, data=data)
    config_dict = base.to_dict()
    config_dict.pop("method")
    # --resume may run from another working directory: pin local dataset and model paths.
    for section, key in (("data", "dataset"), ("model", "name")):
        if Path(config_dict[section][key]).expanduser().exists():
            config_dict[section][key] = str(Path(config_dict[section][key]).expanduser().resolve())
    return {
        "config": config_dict,
        "method_options": method_options,
        "methods": chosen,
        "seeds": parse_seeds(seeds, base.train.seed),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def extend_plan(
    compare_dir: Path,
    config: Config | str | Path | None,
    overrides: list[str] | dict[str, Any] | None,
    methods: Sequence[str] | str | None,
    seeds: int | Sequence[int] | str | None,
) -> dict[str, Any]:
    """The saved plan of ``compare_dir`` for ``--resume``, with any extra methods and seeds added."""
    if config is not None or overrides:
        raise ConfigError(
            "--resume reuses the comparison's saved config; --config and --set cannot change it.",
            "Start a new comparison to change the config.",
        )
    plan = load_plan(compare_dir)
    if methods is not None:
        plan["methods"] = list(dict.fromkeys([*plan["methods"], *parse_methods(methods)]))
    if seeds is not None:
        extra = parse_seeds(seeds, int(plan["config"]["train"]["seed"]))
        plan["seeds"] = list(dict.fromkeys([*plan["seeds"], *extra]))
    return plan


def parse_methods(methods: Sequence[str] | str | None) -> list[str]:
    if methods is None:
        available = method_names()
        return [name for name in DEFAULT_METHODS if name in available]
    names = [m.strip() for m in (methods.split(",") if isinstance(methods, str) else methods) if m.strip()]
    if not names:
        raise ConfigError("No methods to compare.", "Pass e.g. --methods full,lora,untuned,tfidf.")
    for name in names:
        get_method(name)  # unknown names fail now, with a "did you mean", not after hours of other runs
    return list(dict.fromkeys(names))


def parse_seeds(seeds: int | Sequence[int] | str | None, first: int) -> list[int]:
    if seeds is None:
        seeds = DEFAULT_SEEDS
    if isinstance(seeds, str):
        parts = [part.strip() for part in seeds.split(",") if part.strip()]
        try:
            values = [int(part) for part in parts]
        except ValueError:
            raise ConfigError(f"--seeds must be a count (3) or a list (1,2,3), got '{seeds}'.") from None
        seeds = values[0] if len(values) == 1 and "," not in seeds else values
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"--seeds must be at least 1, got {seeds}.")
        return [first + offset for offset in range(seeds)]
    values = list(dict.fromkeys(int(seed) for seed in seeds))
    if not values:
        raise ConfigError("--seeds is empty.", "Pass a count (3) or a list (1,2,3).")
    return values


def option_names(method: str) -> set[str]:
    return {f.name for f in dataclasses.fields(get_method_config_class(method))}


def method_config(method: str, options: dict[str, Any]) -> Any:
    """``method``'s config with the comparison's options that it has."""
    config_class = get_method_config_class(method)
    names = option_names(method)
    return config_class(**{key: value for key, value in options.items() if key in names})


def shared_max_length(config: Config, methods: list[str], method_options: dict[str, Any] | None = None) -> int:
    """The one max length every run tokenizes with, resolved as ``train`` resolves it (``config.resolve_settings``)
    against the model's limit less the most positions any compared method reserves (soft-prompt tokens).

    Pinning it in the plan means no run resolves it on its own, so all encoder runs produce the same token ids.
    """
    encoder_methods = [name for name in methods if get_method(name).uses_encoder]
    if not encoder_methods:
        return resolve_settings(config, model_limit=None, uses_encoder=False).max_length
    reserved = max(method_config(name, method_options or {}).reserved_positions() for name in encoder_methods)
    return resolve_settings(config, model_limit(config.model), reserved_positions=reserved).max_length


def run_overrides(plan: dict[str, Any], compare_dir: Path, method: str, seed: int) -> dict[str, Any]:
    """The dotted overrides that make one run of the plan: the base config, the method's options, seed and name."""
    options = option_names(method)
    out = flatten(plan["config"])
    out.update({f"method.{k}": v for k, v in plan.get("method_options", {}).items() if k in options})
    out.update(
        {
            "method.name": method,
            "train.seed": seed,
            "run.output_dir": str(compare_dir),
            "run.name": run_name(method, seed),
        }
    )
    return out


def write_plan(compare_dir: Path, plan: dict[str, Any]) -> None:
    text = yaml.safe_dump(plan, sort_keys=False, allow_unicode=True)
    tmp = compare_dir / f".{PLAN_FILE}.tmp"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(compare_dir / PLAN_FILE)


def write_records(compare_dir: Path, records: list[RunRecord]) -> None:
    """Save the run states after every run, so an interrupted comparison still knows what failed and why."""
    path = compare_dir / RESULTS_FILE
    results = runs.read_json(path) if path.is_file() else {}
    results["runs"] = [record.to_dict() for record in records]
    runs.write_json(path, results)


__all__ = [
    "DEFAULT_METHODS",
    "DEFAULT_SEEDS",
    "LOG_FILE",
    "PLAN_FILE",
    "RESULTS_FILE",
    "RunRecord",
    "extend_plan",
    "load_plan",
    "load_records",
    "new_plan",
    "parse_methods",
    "parse_seeds",
    "plan_records",
    "run_name",
    "run_overrides",
    "shared_max_length",
    "write_plan",
    "write_records",
]
