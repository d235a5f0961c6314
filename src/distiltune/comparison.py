"""``compare``: every method x every seed on identical data, then one report.

```
compare/<YYYY-MM-DD_HH-MM-SS>_<dataset>/
  compare.yaml          the plan: base config, methods, seeds (what --resume reads)
  compare.log           what happened, with the traceback of every failed run
  <method>_seed<N>/     one ordinary run directory per method and seed
  comparison.json       per-run status and errors, the per-method table, the fairness check
  comparison.md         the table as Markdown
  plots/*.png           overlaid curves, F1 bars, accuracy against trainable parameters
  report.html           everything above in one self-contained file
```

Fairness: the validation split is carved from train with ``data.split_seed`` (fixed for the whole comparison,
independent of the training seed), the maximum length is resolved once and pinned for every run, and every
run records fingerprints of its splits and token ids, which the report checks are identical.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from distiltune import runs
from distiltune.config import Config, load_config
from distiltune.errors import ConfigError, DistiltuneError, RunError
from distiltune.methods import get_method, get_method_config_class, method_names

logger = logging.getLogger("distiltune")

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


@dataclass
class Comparison:
    """A finished comparison: its directory, per-run records and the per-method table."""

    dir: Path
    runs: list[RunRecord]
    table: list[dict[str, Any]] = field(default_factory=list)
    fairness: dict[str, Any] = field(default_factory=dict)
    report: Path | None = None


def compare(
    config: Config | str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    methods: Sequence[str] | str | None = None,
    seeds: int | Sequence[int] | str | None = None,
    output_dir: str | Path | None = None,
    resume: str | Path | None = None,
) -> Comparison:
    """Train and evaluate ``methods`` for each seed on identical splits; write the comparison report.

    ``seeds`` is a count (``3``: train.seed, +1, +2) or explicit seeds (``[1, 7]`` or ``"1,7"``).
    ``resume`` points at an earlier comparison directory: its plan is reused and completed runs are skipped;
    ``methods``/``seeds`` may extend it, config changes may not.
    """
    if resume is not None:
        compare_dir, plan = _resume_plan(Path(resume), config, overrides, methods, seeds)
    else:
        plan = _new_plan(config, overrides, methods, seeds)
        root = Path(output_dir) if output_dir is not None else Path("compare")
        compare_dir = runs.create_unique_dir(root, runs.slug(plan["config"]["data"]["dataset"]))
    _write_plan(compare_dir, plan)
    records = [
        RunRecord(method=method, seed=seed, name=run_name(method, seed))
        for seed in plan["seeds"]
        for method in plan["methods"]
    ]
    with _log_to(compare_dir / LOG_FILE):
        logger.info("Comparing %s over seeds %s in %s", ", ".join(plan["methods"]), plan["seeds"], compare_dir)
        for index, record in enumerate(records, start=1):
            _execute(compare_dir, plan, record, f"[{index}/{len(records)}]")
            _write_records(compare_dir, records)
    from distiltune.report import render_report

    return render_report(compare_dir)


def run_name(method: str, seed: int) -> str:
    return f"{method}_seed{seed}"


def is_completed(run_dir: Path) -> bool:
    """A run counts as done when it finished writing its metrics and model (or its status.json says so)."""
    status = run_dir / "status.json"
    if status.is_file():
        try:
            if runs.read_json(status).get("status") not in ("completed", "complete", "done", "finished"):
                return False
        except (ValueError, OSError):
            return False
    return (run_dir / runs.METRICS_FILE).is_file() and (run_dir / runs.MODEL_DIR).is_dir()


def load_plan(compare_dir: Path) -> dict[str, Any]:
    path = compare_dir / PLAN_FILE
    if not path.is_file():
        raise RunError(
            f"{compare_dir} is not a comparison directory (no {PLAN_FILE}).",
            "Pass a folder created by distiltune compare.",
        )
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_records(compare_dir: Path, plan: dict[str, Any]) -> list[RunRecord]:
    """The records saved by the last invocation, with the status of each run directory re-checked."""
    saved: dict[str, dict[str, Any]] = {}
    results = compare_dir / RESULTS_FILE
    if results.is_file():
        saved = {row["name"]: row for row in runs.read_json(results).get("runs", [])}
    records = []
    for seed in plan["seeds"]:
        for method in plan["methods"]:
            name = run_name(method, seed)
            record = RunRecord(method=method, seed=seed, name=name)
            if is_completed(compare_dir / name):
                record.status = "completed"
                record.reused = bool(saved.get(name, {}).get("reused"))
            elif name in saved and saved[name].get("status") == "failed":
                record.status, record.error = "failed", saved[name].get("error")
            records.append(record)
    return records


# --- planning ---------------------------------------------------------------------------------


def _new_plan(
    config: Config | str | Path | None,
    overrides: list[str] | dict[str, Any] | None,
    methods: Sequence[str] | str | None,
    seeds: int | Sequence[int] | str | None,
) -> dict[str, Any]:
    from distiltune.config import _parse_overrides

    items = _parse_overrides(overrides)
    if "method.name" in items:
        raise ConfigError("compare runs several methods: choose them with --methods, not method.name.")
    method_overrides = {key.split(".", 1)[1]: items.pop(key) for key in list(items) if key.startswith("method.")}
    if isinstance(config, Config):
        raw = config.to_dict()
        base = load_config(None, {**_flatten(raw, skip="method"), **items})
    else:
        base = load_config(config, items)
    base_method = {k: v for k, v in base.to_dict()["method"].items() if k != "name"}
    # Options from a --config method section apply where they fit; explicit method.* overrides must fit somewhere.
    method_options = {**base_method, **method_overrides}
    chosen = _parse_methods(methods)
    for key in method_overrides:
        if not any(key in _option_names(name) for name in chosen):
            raise ConfigError(
                f"method.{key} is not an option of any compared method ({', '.join(chosen)}).",
                "Check the spelling, or add the method it belongs to.",
            )
    split_seed = base.data.split_seed if base.data.split_seed is not None else base.train.seed
    data = dataclasses.replace(base.data, split_seed=split_seed)
    data = dataclasses.replace(data, max_length=_shared_max_length(base, chosen))
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
        "seeds": _parse_seeds(seeds, base.train.seed),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _resume_plan(
    compare_dir: Path,
    config: Config | str | Path | None,
    overrides: list[str] | dict[str, Any] | None,
    methods: Sequence[str] | str | None,
    seeds: int | Sequence[int] | str | None,
) -> tuple[Path, dict[str, Any]]:
    if config is not None or overrides:
        raise ConfigError(
            "--resume reuses the comparison's saved config; --config and --set cannot change it.",
            "Start a new comparison to change the config.",
        )
    plan = load_plan(compare_dir)
    if methods is not None:
        plan["methods"] = list(dict.fromkeys([*plan["methods"], *_parse_methods(methods)]))
    if seeds is not None:
        extra = _parse_seeds(seeds, int(plan["config"]["train"]["seed"]))
        plan["seeds"] = list(dict.fromkeys([*plan["seeds"], *extra]))
    return compare_dir, plan


def _parse_methods(methods: Sequence[str] | str | None) -> list[str]:
    if methods is None:
        available = method_names()
        return [name for name in DEFAULT_METHODS if name in available]
    names = [m.strip() for m in (methods.split(",") if isinstance(methods, str) else methods) if m.strip()]
    if not names:
        raise ConfigError("No methods to compare.", "Pass e.g. --methods full,lora,untuned,tfidf.")
    for name in names:
        get_method(name)  # unknown names fail now, with a "did you mean", not after hours of other runs
    return list(dict.fromkeys(names))


def _parse_seeds(seeds: int | Sequence[int] | str | None, first: int) -> list[int]:
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


def _option_names(method: str) -> set[str]:
    return {f.name for f in dataclasses.fields(get_method_config_class(method))}


def _shared_max_length(config: Config, methods: list[str]) -> int | None:
    """The one max length every run tokenizes with: the configured (or preset) one, capped by the model's limit.

    Pinning it in the plan means no run resolves it on its own, so all encoder runs produce the same token ids.
    """
    from distiltune.data import DEFAULT_MAX_LENGTH
    from distiltune.presets import get_preset

    wanted = config.data.max_length
    uses_encoder = any(name != "tfidf" for name in methods)
    if wanted is None:
        from distiltune.data.sources import looks_like_path

        preset = None if looks_like_path(config.data.dataset) else get_preset(config.data.dataset)
        wanted = (preset.max_length if preset else None) or DEFAULT_MAX_LENGTH
        return min(wanted, _model_limit(config)) if uses_encoder else wanted
    if uses_encoder and wanted > (limit := _model_limit(config)):
        # Every encoder run would fail on this; say it once, before any of them starts.
        raise ConfigError(
            f"data.max_length {wanted} exceeds the model's limit of {limit} tokens.",
            f"Use --max-length {limit} or less.",
        )
    return wanted


def _model_limit(config: Config) -> int:
    from transformers import AutoConfig

    from distiltune.modeling import load_tokenizer, model_max_length, resolve_model_name

    m = config.model
    tokenizer = load_tokenizer(m.name, m.revision, m.trust_remote_code)
    try:
        model_config = AutoConfig.from_pretrained(
            resolve_model_name(m.name), revision=m.revision, trust_remote_code=m.trust_remote_code
        )
    except (OSError, ValueError):
        return 512
    return model_max_length(model_config, tokenizer)


def _run_overrides(plan: dict[str, Any], compare_dir: Path, method: str, seed: int) -> dict[str, Any]:
    options = _option_names(method)
    out = _flatten(plan["config"])
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


# --- execution --------------------------------------------------------------------------------


def _execute(compare_dir: Path, plan: dict[str, Any], record: RunRecord, progress: str) -> None:
    from distiltune.training import train

    run_dir = compare_dir / record.name
    if is_completed(run_dir):
        record.status, record.error, record.reused = "completed", None, True
        logger.info("%s %s: already completed, skipped.", progress, record.name)
        return
    resumable = _resumable(run_dir)
    if run_dir.exists() and not resumable:
        aside = _free_name(compare_dir, f"{record.name}.incomplete")
        run_dir.rename(aside)
        logger.info("%s %s: an unfinished attempt was moved to %s.", progress, record.name, aside.name)
    logger.info("%s %s: %s.", progress, record.name, "resuming from its checkpoint" if resumable else "training")
    started = time.perf_counter()
    try:
        if resumable:  # an interrupted or crashed run continues where it stopped (distiltune.resume)
            train(resume=run_dir)
        else:
            train(None, _run_overrides(plan, compare_dir, record.method, record.seed))
    except Exception as err:  # one method failing must not stop the others
        message = err.one_line() if isinstance(err, DistiltuneError) else f"{type(err).__name__}: {err}"
        record.status, record.error = "failed", " ".join(message.split())[:500]
        logger.error("%s %s failed: %s", progress, record.name, record.error)
        _append_traceback(compare_dir / LOG_FILE, record.name)
        return
    record.status, record.error, record.reused = "completed", None, False
    logger.info("%s %s: done in %.1f s.", progress, record.name, time.perf_counter() - started)


def _resumable(run_dir: Path) -> bool:
    """An unfinished run with its config and a complete checkpoint: resuming it beats starting over."""
    from distiltune.checkpoints import newest_complete_checkpoint

    return (run_dir / runs.CONFIG_FILE).is_file() and newest_complete_checkpoint(
        run_dir / runs.CHECKPOINTS_DIR
    ) is not None


def _append_traceback(path: Path, name: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f"--- traceback of {name} ---\n{traceback.format_exc()}\n")


def _free_name(parent: Path, base: str) -> Path:
    for attempt in range(1, 1000):
        candidate = parent / (base if attempt == 1 else f"{base}-{attempt}")
        if not candidate.exists():
            return candidate
    raise RunError(f"Too many unfinished attempts of {base} in {parent}.", "Remove the *.incomplete folders.")


def _write_plan(compare_dir: Path, plan: dict[str, Any]) -> None:
    text = yaml.safe_dump(plan, sort_keys=False, allow_unicode=True)
    tmp = compare_dir / f".{PLAN_FILE}.tmp"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(compare_dir / PLAN_FILE)


def _write_records(compare_dir: Path, records: list[RunRecord]) -> None:
    """Save the run states after every run, so an interrupted comparison still knows what failed and why."""
    path = compare_dir / RESULTS_FILE
    results = runs.read_json(path) if path.is_file() else {}
    results["runs"] = [record.to_dict() for record in records]
    runs.write_json(path, results)


def _flatten(raw: dict[str, Any], skip: str | None = None) -> dict[str, Any]:
    return {
        f"{section}.{key}": value
        for section, values in raw.items()
        if section != skip
        for key, value in values.items()
    }


class _log_to:
    """Copy the distiltune log into compare.log for the length of the comparison."""

    def __init__(self, path: Path) -> None:
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        self.handler.setLevel(logging.INFO)
        self.previous_level = logging.NOTSET

    def __enter__(self) -> None:
        logger.addHandler(self.handler)
        self.previous_level = logger.level
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)

    def __exit__(self, *exc: object) -> None:
        logger.removeHandler(self.handler)
        logger.setLevel(self.previous_level)
        self.handler.close()


__all__ = ["Comparison", "RunRecord", "compare", "is_completed", "load_plan", "load_records"]
