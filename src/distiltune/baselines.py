"""Baselines that every comparison needs: the untuned encoder and TF-IDF + logistic regression.

Both register as methods, so ``--method untuned`` / ``--method tfidf`` work wherever a method name does and
write the same run directory as the tuning methods. This module stays import-light (it is loaded while
the method registry is built); the TF-IDF model itself lives in :mod:`distiltune.tfidf`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from distiltune.methods.base import Method, MethodConfig


@dataclass
class UntunedConfig(MethodConfig):
    """The encoder exactly as every other method starts from it: the pretrained weights plus a freshly
    initialised classification head (seeded by ``train.seed``), evaluated without a single optimizer step."""

    name: ClassVar[str] = "untuned"


def apply_untuned(model: Any, config: UntunedConfig) -> Any:
    # Nothing trains, and the parameter count says so (0 trainable). training.py never calls the optimizer
    # for a method with ``trains=False``.
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


@dataclass
class TfidfConfig(MethodConfig):
    """TF-IDF features and a logistic regression (scikit-learn) on the same splits as the other methods.
    Sentence pairs are joined into one text with a separator. ``train.lr``/epochs/batch size do not apply."""

    name: ClassVar[str] = "tfidf"
    max_features: int | None = 50000
    """Keep the most frequent terms (unigrams and n-grams) up to this many; unset keeps all."""
    ngram_max: int = 2
    """Longest word n-gram used as a feature (1 = unigrams only)."""
    min_df: int = 1
    """Ignore terms that appear in fewer training documents than this."""
    sublinear_tf: bool = True
    """Use 1 + log(term count) instead of the raw count (better for long documents such as reviews)."""
    lowercase: bool = True
    """Lower-case the text before extracting terms."""
    c: float = 4.0
    """Inverse L2 regularisation strength of the logistic regression (scikit-learn's ``C``)."""
    max_iter: int = 2000
    """Iterations of the L-BFGS solver."""

    def validate(self) -> None:
        from distiltune.errors import ConfigError

        if self.ngram_max < 1:
            raise ConfigError(f"method.ngram_max must be >= 1, got {self.ngram_max}.")
        if self.min_df < 1:
            raise ConfigError(f"method.min_df must be >= 1, got {self.min_df}.")
        if self.max_features is not None and self.max_features < 1:
            raise ConfigError(f"method.max_features must be >= 1, got {self.max_features}.")
        if self.c <= 0:
            raise ConfigError(f"method.c must be > 0, got {self.c}.")
        if self.max_iter < 1:
            raise ConfigError(f"method.max_iter must be >= 1, got {self.max_iter}.")


def _save_full(model: Any, directory: Path) -> None:
    from distiltune.methods.full import save_pretrained

    save_pretrained(model, directory)


def _load_full(directory: Path, model_config: Any) -> Any:
    from distiltune.methods.full import load_pretrained

    return load_pretrained(directory, model_config)


def _not_an_encoder(*args: Any) -> Any:
    # training.py and predict.py hand TF-IDF runs to distiltune.tfidf before these hooks could be reached.
    raise RuntimeError("The tfidf baseline has no encoder; it is trained and loaded by distiltune.tfidf.")


def baseline_methods() -> list[Method]:
    return [
        Method(
            "untuned",
            UntunedConfig,
            apply_untuned,
            _save_full,
            _load_full,
            trains=False,
            description="Baseline: pretrained encoder + fresh head, evaluated without training.",
        ),
        Method(
            "tfidf",
            TfidfConfig,
            _not_an_encoder,
            _not_an_encoder,
            _not_an_encoder,
            description="Baseline: TF-IDF + logistic regression (scikit-learn).",
        ),
    ]
