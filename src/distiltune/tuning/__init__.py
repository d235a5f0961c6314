"""Hyperparameter search: ``distiltune.tune(config, trials=20)`` and ``distiltune tune``.

An Optuna study (TPE sampler, median or Hyperband pruner) over a search space of config keys; each trial is an
ordinary run under ``tune/<timestamp>_<study>/trials/``, fed to the pruner after every evaluation. See
:mod:`distiltune.tuning.search` for the tune directory and workers, :mod:`distiltune.tuning.space` for spaces,
:mod:`distiltune.tuning.outputs` for best.yaml, trials.csv, the plots and report.html. (The package is ``tuning``,
not ``tune``, so that the lazy ``distiltune.tune`` stays the function.)
"""

from __future__ import annotations

from distiltune.tuning.search import PRUNERS, TuneResult, default_study_name, make_pruner, parse_duration, tune
from distiltune.tuning.space import SearchParam, SearchSpace, default_space, parse_space, resolve_space

__all__ = [
    "PRUNERS",
    "SearchParam",
    "SearchSpace",
    "TuneResult",
    "default_space",
    "default_study_name",
    "make_pruner",
    "parse_duration",
    "parse_space",
    "resolve_space",
    "tune",
]
