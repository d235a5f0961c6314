"""``tune(config) -> TuneResult``: an Optuna study over a search space, each trial an ordinary distiltune run.

```
tune/<YYYY-MM-DD_HH-MM-SS>_<study>/
  tune.yaml           the study's name and storage, objective, base config and space: how a worker finds this
                      folder, and what every worker of the study must agree on
  study.db            the study (SQLite), unless --storage points elsewhere
  tune.log            the search's log, every worker appending, with the traceback of each failed trial
  trials/trial_0003/  one ordinary run directory per trial; status.json says completed, failed or pruned
  trials.csv          one row per trial: state, value, parameters, validation/test scores, run directory
  best.yaml           the best trial's full config: `distiltune train --config best.yaml` repeats it
  tune.json           summary: best trial, counts, parameter importances, every trial
  plots/*.png         optimisation history, learning curves of the trials, parameter importance
  report.html         all of the above in one self-contained page
```

Workers: every ``distiltune tune`` process given the same ``--study`` and ``--storage`` works on the same study
(Optuna hands out trial numbers; SQLite for one machine, any SQLAlchemy URL for several). A worker joins the newest
folder under ``--output-dir`` whose ``tune.yaml`` names the same study and storage, else it creates one; so workers
on one machine (or sharing a file system) share one folder, and re-running the command continues the study there.
A worker on a machine of its own creates its own folder: its trials' run directories stay where they ran, and the
summary files in each folder cover the whole study, since they are rebuilt from the storage.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import socket
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from distiltune import runs
from distiltune.config import Config, dotted_items, load_config, read_yaml_file
from distiltune.errors import ConfigError, DistiltuneError, RunError
from distiltune.runs import write_status
from distiltune.schema import ConfigModel, error_context
from distiltune.tasks.record import RunMetrics
from distiltune.training import train
from distiltune.tuning.outputs import STUDY_ATTR, write_outputs
from distiltune.tuning.pruning import PruningCallback
from distiltune.tuning.space import SearchSpace, SpaceFile, resolve_space, space_to_dict, suggest

logger = logging.getLogger("distiltune")

PLAN_FILE = "tune.yaml"
STUDY_DB = "study.db"
LOG_FILE = "tune.log"
TRIALS_DIR = "trials"
PRUNERS = ("median", "hyperband", "none")
#: Random trials before TPE models the results (Optuna's default is 10: most of a 12-trial search would be random).
TPE_STARTUP_TRIALS = 5
#: A worker stops after this many failed trials in a row: the cause is then rarely the sampled values.
MAX_CONSECUTIVE_FAILURES = 3
#: Seconds between a worker's heartbeats; a trial whose worker fell silent for the grace period is marked failed.
HEARTBEAT_SECONDS = 60
GRACE_SECONDS = 180


class TunePlan(ConfigModel):
    """``tune.yaml``: what a worker looks for to join a study's folder, and what the study searches."""

    study: str
    """The Optuna study's name."""
    storage: str | None = None
    """The ``--storage`` URL the study lives in; unset: ``study.db`` in this folder."""
    metric: str | None = None
    """The validation metric the trials are scored on (``train.metric``; unset: the preset's, else f1_macro)."""
    direction: Literal["minimize", "maximize"] = "maximize"
    """minimize for the loss, maximize for every other metric."""
    created: str = ""
    """When the folder was created (its name's timestamp)."""
    space: SpaceFile
    """The search space, in a space file's form."""
    config: Config
    """The base config every trial starts from."""

    def write(self, tune_dir: Path) -> None:
        (tune_dir / PLAN_FILE).write_text(yaml.safe_dump(self.model_dump(), sort_keys=False), encoding="utf-8")

    @classmethod
    def read(cls, tune_dir: Path) -> TunePlan:
        path = tune_dir / PLAN_FILE
        return cls.model_validate(read_yaml_file(path), context=error_context(str(path)))


@dataclass
class TuneResult:
    """A search's state after this worker stopped: the whole study (every worker's trials), not only its own."""

    dir: Path
    study: str
    storage: str
    metric: str
    direction: str
    best_trial: int | None
    """Number of the best completed trial (None before any completed)."""
    best_value: float | None
    best_params: dict[str, Any]
    best_config: Path | None
    """``best.yaml``: ``distiltune train --config`` on it repeats the best trial."""
    counts: dict[str, int]
    """Trials per state: complete, pruned, fail, running, waiting."""
    importances: dict[str, float]
    trials: list[dict[str, Any]] = field(default_factory=list)
    report: Path | None = None


def tune(
    config: Config | str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    trials: int = 20,
    space: str | Path | dict[str, Any] | None = None,
    storage: str | None = None,
    study: str | None = None,
    timeout: float | str | None = None,
    pruner: Any = "median",
    output_dir: str | Path = "tune",
    sampler_seed: int | None = None,
    keep_checkpoints: bool = False,
) -> TuneResult:
    """Search hyperparameters of ``config`` (plus dotted ``overrides``) with Optuna; return the study's result.

    ``trials`` is the number of completed or pruned trials the *study* should reach (failed ones are retried, and
    another worker's trials count too), so running the command again continues a study that stopped early, and
    several workers share the count; each may start one more trial while the last ones finish. ``space`` is a YAML
    file or mapping (see :mod:`distiltune.tuning.space`), default: the method's. ``storage`` is an SQLAlchemy URL
    (default: ``study.db`` in the tune directory); ``study`` names the study (default
    ``<model>_<dataset>_<method>``). ``timeout`` stops this worker from starting trials after that long (seconds,
    or ``"90m"``, ``"2h"``, ``"1h30m"``). ``pruner`` is median, hyperband, none, or an ``optuna.pruners``
    object. ``sampler_seed`` seeds TPE (one worker only: workers with one seed would propose the same values; a
    continued study is seeded with it plus the trials it holds).
    Trials' ``checkpoints/`` are removed once a trial ends (its ``model/`` stays) unless ``keep_checkpoints``.
    """
    import optuna

    base = load_config(config, overrides)
    if trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {trials}.")
    seconds = parse_duration(timeout)
    searched = resolve_space(space, base)
    direction = "minimize" if base.train.metric == "loss" else "maximize"
    study_name = study or default_study_name(base)
    pruner_object = make_pruner(pruner)
    fixed = dotted_items(base, skip=("run",))
    agreement = _jsonable({"config": fixed, "space": space_to_dict(searched)})
    root = Path(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock

    # One worker at a time finds or creates the folder and the study, so two that start together share both.
    with FileLock(str(root / f".{runs.slug(study_name)}.lock")):
        tune_dir = _find_tune_dir(root, study_name, storage)
        joined = tune_dir is not None
        if tune_dir is None:
            tune_dir = runs.create_unique_dir(root, runs.slug(study_name))
            TunePlan(
                study=study_name,
                storage=storage,
                metric=base.train.metric,
                direction=direction,
                created=tune_dir.name[:19],
                space=SpaceFile(searched),
                config=base,
            ).write(tune_dir)
        storage_url = storage or f"sqlite:///{(tune_dir / STUDY_DB).resolve()}"
        optuna_study = _open_study(storage_url, study_name, direction, pruner_object, sampler_seed)
        _check_agreement(optuna_study, agreement, study_name)
    settings = {
        "study": study_name,
        "storage": storage_url,
        "direction": direction,
        "metric": base.train.metric,
        "pruner": pruner if isinstance(pruner, str) else type(pruner).__name__,
        "model": base.model.name,
        "dataset": base.data.dataset,
        "method": base.method.name,
        "target_trials": trials,
    }
    trials_dir = tune_dir / TRIALS_DIR
    trials_dir.mkdir(exist_ok=True)
    objective = _Objective(base, searched, trials_dir, study_name, keep_checkpoints)
    progress = _Progress(trials, tune_dir, settings, base.run.output_dir)
    with runs.log_to(tune_dir / LOG_FILE, source=f"{socket.gethostname()}:{os.getpid()}"):
        logger.info(
            "%s study '%s' in %s (storage %s): %s",
            "Joining" if joined else "Starting",
            study_name,
            tune_dir,
            storage_url,
            "; ".join(f"{key} {param.describe()}" for key, param in searched.items()),
        )
        try:
            # Trials of a worker that died (its heartbeat stopped) are failed first, so they do not count as running.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(optuna_study)
            if progress.counted(optuna_study) < trials:
                optuna_study.optimize(
                    objective, timeout=seconds, catch=(Exception,), callbacks=[progress], gc_after_trial=True
                )
            else:
                logger.info("The study already has the %d trials asked for (--trials): nothing to run.", trials)
        finally:
            with FileLock(str(tune_dir / ".outputs.lock")):
                summary = write_outputs(tune_dir, optuna_study, settings, base.run.output_dir, full=True)
        logger.info(_closing_line(summary, tune_dir))
    if progress.failures >= MAX_CONSECUTIVE_FAILURES:
        raise RunError(
            f"{progress.failures} trials in a row failed; this worker stopped. Last error: {progress.last_error}",
            f"Tracebacks are in {tune_dir / LOG_FILE}.",
        )
    return _result(tune_dir, summary)


def default_study_name(config: Config) -> str:
    return f"{runs.slug(config.model.name)}_{runs.slug(config.data.dataset)}_{config.method.name}"


def make_pruner(pruner: Any) -> Any:
    """An Optuna pruner from a name: median (the median of earlier trials at the same evaluation, after 5 trials),
    hyperband (successive halving brackets over evaluations), none; an ``optuna.pruners`` object passes through."""
    import optuna

    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    if pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    if pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)
    if pruner == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"--pruner must be one of {', '.join(PRUNERS)}; got {pruner!r}.")


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([dhms])", re.IGNORECASE)
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(value: float | str | None) -> float | None:
    """Seconds from a number or a text like ``90``, ``90s``, ``30m``, ``2h``, ``1h30m``, ``1.5h``; None stays None."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip().lower().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            parts = _DURATION.findall(text)
            if not parts or "".join(number + unit for number, unit in parts) != text:
                raise ConfigError(
                    f"--timeout '{value}' is not a duration.", "Use seconds or e.g. 90s, 30m, 2h, 1h30m."
                ) from None
            seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    if seconds <= 0:
        raise ConfigError(f"--timeout must be positive, got '{value}'.")
    return seconds


# --- the study ------------------------------------------------------------------------------------


def _find_tune_dir(root: Path, study: str, storage: str | None) -> Path | None:
    """The newest folder under ``root`` whose tune.yaml names ``study`` with the same storage."""
    for candidate in sorted(root.glob(f"*_{runs.slug(study)}*"), key=lambda path: path.name, reverse=True):
        if not (candidate / PLAN_FILE).is_file():
            continue
        try:
            plan = TunePlan.read(candidate)
        except ConfigError:  # not a readable study folder: not the one to join
            continue
        if plan.study == study and plan.storage == storage:
            return candidate
    return None


def _open_study(url: str, name: str, direction: str, pruner: Any, sampler_seed: int | None) -> Any:
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    # SQLite waits up to a minute for another worker's write instead of failing with "database is locked".
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the heartbeat is "experimental"
            storage = optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS
            )
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            direction=direction,
            pruner=pruner,
            load_if_exists=True,
        )
        # A seeded sampler restarts its random stream in every process: a continued study would be proposed the
        # values of its first trials again. Offsetting by the trials it holds keeps a rerun new and reproducible.
        seed = None if sampler_seed is None else sampler_seed + len(study.trials)
        study.sampler = optuna.samplers.TPESampler(n_startup_trials=TPE_STARTUP_TRIALS, seed=seed)
    except (SQLAlchemyError, ValueError, ImportError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"--storage {url}: cannot open the study ({first}).") from None
    if study.direction.name.lower() != direction:
        raise ConfigError(
            f"Study '{name}' {study.direction.name.lower()}s its objective; train.metric here asks to {direction}.",
            "Use the study's metric, or another --study name.",
        )
    return study


def _check_agreement(study: Any, mine: dict[str, Any], name: str) -> None:
    """The first worker records the base config and the space in the study; later workers must match them."""
    recorded = study.user_attrs.get(STUDY_ATTR)
    if recorded is None:
        study.set_user_attr(STUDY_ATTR, mine)
        return
    for part, label in (("space", "search space"), ("config", "config")):
        theirs, ours = recorded.get(part, {}), mine[part]
        differing = sorted(key for key in set(theirs) | set(ours) if theirs.get(key) != ours.get(key))
        if differing:
            key = differing[0]
            raise ConfigError(
                f"Study '{name}' was started with another {label}: {key} is {theirs.get(key)!r} there, "
                f"{ours.get(key)!r} here{f' (and {len(differing) - 1} more)' if len(differing) > 1 else ''}.",
                "Every worker of a study needs the same --config/--set/--space; or start a new --study.",
            )


class _Objective:
    """One trial: suggest values, train an ordinary run under trials/, return its validation metric."""

    def __init__(self, base: Config, space: SearchSpace, trials_dir: Path, study: str, keep_checkpoints: bool) -> None:
        self.base = base
        self.space = space
        self.trials_dir = trials_dir
        self.study = study
        self.keep_checkpoints = keep_checkpoints

    def __call__(self, trial: Any) -> float:
        import optuna

        params = suggest(trial, self.space)
        name = f"trial_{trial.number:04d}"
        run_dir = self.trials_dir / name
        trial.set_user_attr("run_dir", str(run_dir.resolve()))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        logger.info("Trial %d: %s", trial.number, ", ".join(f"{key}={value!r}" for key, value in params.items()))
        pruning = PruningCallback(trial)
        quiet_pruning = _NotAFailure()
        logger.addFilter(quiet_pruning)
        try:
            config = load_config(self.base, {**params, "run.output_dir": str(self.trials_dir), "run.name": name})
            run = train(config, callbacks=[pruning])
        except optuna.TrialPruned:
            where = pruning.pruned_at
            if where is not None:
                trial.set_user_attr("pruned_at", where.describe())
                write_status(run_dir, "pruned", trial=trial.number, study=self.study, **dataclasses.asdict(where))
                with (run_dir / runs.LOG_FILE).open("a", encoding="utf-8") as handle:
                    handle.write(f"Trial {trial.number} of study '{self.study}' pruned at {where.describe()}.\n")
            self._drop_checkpoints(run_dir)
            logger.info("Trial %d pruned at %s.", trial.number, where.describe() if where else "an evaluation")
            raise
        except Exception as err:
            message = err.one_line() if isinstance(err, DistiltuneError) else f"{type(err).__name__}: {err}"
            trial.set_user_attr("error", " ".join(message.split())[:500])
            logger.error("Trial %d failed: %s", trial.number, message)
            _append_traceback(self.trials_dir.parent / LOG_FILE, name)
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("error", "interrupted")
            raise
        finally:
            logger.removeFilter(quiet_pruning)
        metric = run.config.train.metric or "f1_macro"
        trial.set_user_attr("metric", metric)
        trial.set_user_attr("scores", _headline_scores(run.record, metric))
        self._drop_checkpoints(run_dir)
        return _objective_value(run, metric)

    def _drop_checkpoints(self, run_dir: Path) -> None:
        if not self.keep_checkpoints:  # model/ holds the best weights; checkpoints only serve --resume
            shutil.rmtree(run_dir / runs.CHECKPOINTS_DIR, ignore_errors=True)


class _NotAFailure(logging.Filter):
    """Drops training's "Run failed: <exception>" line when the exception is a pruned trial: pruning is the search
    working, and the trial's status.json and train.log say "pruned" instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        import optuna

        return not any(isinstance(arg, optuna.TrialPruned) for arg in record.args or ())


class _Progress:
    """After each trial: log it, refresh trials.csv/best.yaml/tune.json, and stop when the study has enough trials
    or this worker has failed too many in a row."""

    def __init__(self, target: int, tune_dir: Path, settings: dict[str, Any], output_dir: str) -> None:
        self.target = target
        self.tune_dir = tune_dir
        self.settings = settings
        self.output_dir = output_dir
        self.failures = 0
        self.last_error: str | None = None

    @staticmethod
    def counted(study: Any) -> int:
        """Trials that count towards --trials: completed, pruned, and running (so workers do not overshoot)."""
        from optuna.trial import TrialState

        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        return len(study.get_trials(deepcopy=False, states=states))

    def __call__(self, study: Any, trial: Any) -> None:
        from filelock import FileLock
        from optuna.trial import TrialState

        if trial.state == TrialState.FAIL:
            self.failures += 1
            self.last_error = trial.user_attrs.get("error")
        else:
            self.failures = 0
        if trial.state == TrialState.COMPLETE:
            best = study.best_trial
            logger.info(
                "Trial %d completed: %s %.4f (best %.4f, trial %d).",
                trial.number,
                trial.user_attrs.get("metric", "value"),
                trial.value,
                best.value,
                best.number,
            )
        with FileLock(str(self.tune_dir / ".outputs.lock")):
            write_outputs(self.tune_dir, study, self.settings, self.output_dir, full=False)
        if self.counted(study) >= self.target or self.failures >= MAX_CONSECUTIVE_FAILURES:
            study.stop()


def _objective_value(run: Any, metric: str) -> float:
    """The run's validation ``metric`` at its best checkpoint (what metrics.json reports); the lowest validation
    loss from its history when the metric is loss."""
    if metric == "loss":
        losses = [row["eval_loss"] for row in run.history if row.get("eval_loss") is not None]
        if losses:
            return float(min(losses))
    validation = run.record.validation
    value = validation.value(metric) if validation is not None else None
    if value is None:
        raise RunError(f"{run.dir}: no validation {metric} in metrics.json to optimise.")
    return float(value)


def _headline_scores(record: RunMetrics, metric: str) -> dict[str, dict[str, float]]:
    keys = list(dict.fromkeys(["accuracy", "f1_macro", metric]))
    return {
        name: {key: value for key in keys if (value := split.value(key)) is not None}
        for name, split in record.splits().items()
    }


def _result(tune_dir: Path, summary: dict[str, Any]) -> TuneResult:
    best = summary["best"]
    return TuneResult(
        dir=tune_dir,
        study=summary["study"],
        storage=summary["storage"],
        metric=summary["metric"],
        direction=summary["direction"],
        best_trial=best["number"] if best else None,
        best_value=best["value"] if best else None,
        best_params=dict(best["params"]) if best else {},
        best_config=Path(summary["best_config"]) if summary["best_config"] else None,
        counts=summary["counts"],
        importances=summary["importances"],
        trials=summary["trials"],
        report=tune_dir / "report.html",
    )


def _closing_line(summary: dict[str, Any], tune_dir: Path) -> str:
    counts, best = summary["counts"], summary["best"]
    done = f"{counts['complete']} completed, {counts['pruned']} pruned, {counts['fail']} failed"
    if best is None:
        return f"Study '{summary['study']}': {done}; no completed trial yet. Report: {tune_dir / 'report.html'}"
    return (
        f"Study '{summary['study']}': {done}. Best: trial {best['number']}, validation {summary['metric']} "
        f"{best['value']:.4f}. distiltune train --config {tune_dir / 'best.yaml'} repeats it."
    )


def _append_traceback(path: Path, name: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f"--- traceback of {name} ---\n{traceback.format_exc()}\n")


def _jsonable(value: Any) -> Any:
    """As the study's storage gives it back (JSON): tuples become lists."""
    return json.loads(json.dumps(value))


__all__ = ["PRUNERS", "TunePlan", "TuneResult", "default_study_name", "make_pruner", "parse_duration", "tune"]
