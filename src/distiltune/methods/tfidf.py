"""The TF-IDF + logistic regression baseline: fit, save without pickle, reload and predict.

It plugs in through the :class:`~distiltune.methods.base.Method` protocol's ``fit`` and ``load_predictor`` hooks: it
has no encoder, tokenizer or Trainer, and training, evaluation and serving treat it like any method. Sentence pairs
are joined into one document with a separator.

The model is stored as plain data, never as a pickled scikit-learn object (unpickling runs arbitrary code):

```
model/tfidf.json          vectorizer settings (n-gram range, lower-casing, token pattern, sublinear tf)
model/vocabulary.json     the terms, in feature-index order
model/tfidf.safetensors   idf [features], weights [labels, features], bias [labels] (float64)
model/labels.json         id2label, is_pair, method "tfidf" (as in every run)
```

Fitting uses scikit-learn's ``TfidfVectorizer`` and ``LogisticRegression``, then copies what they learned into
:class:`TfidfModel`. Training, evaluation and a reloaded run all compute features and logits through that same
class, so a reload reproduces the in-memory predictions exactly.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import Field

from distiltune import runs
from distiltune.data.multilabel import multi_hot
from distiltune.data.tokenize import is_multi_label_frame
from distiltune.errors import RunError
from distiltune.methods.base import Method, MethodConfig, register_method

#: Joins the two sentences of a pair into one document (the default token pattern keeps "sep" as a term).
PAIR_SEPARATOR = " [SEP] "
WEIGHTS_FILE = "tfidf.safetensors"
VOCABULARY_FILE = "vocabulary.json"
SETTINGS_FILE = "tfidf.json"


class TfidfConfig(MethodConfig):
    """TF-IDF features and a logistic regression (scikit-learn) on the same splits as the other methods.
    Sentence pairs are joined into one text with a separator. ``train.lr``/epochs/batch size do not apply."""

    name: ClassVar[str] = "tfidf"
    max_features: int | None = Field(50000, ge=1)
    """Keep the most frequent terms (unigrams and n-grams) up to this many; unset keeps all."""
    ngram_max: int = Field(2, ge=1)
    """Longest word n-gram used as a feature (1 = unigrams only)."""
    min_df: int = Field(1, ge=1)
    """Ignore terms that appear in fewer training documents than this."""
    sublinear_tf: bool = True
    """Use 1 + log(term count) instead of the raw count (better for long documents such as reviews)."""
    lowercase: bool = True
    """Lower-case the text before extracting terms."""
    c: float = Field(4.0, gt=0)
    """Inverse L2 regularisation strength of the logistic regression (scikit-learn's ``C``)."""
    max_iter: int = Field(2000, ge=1)
    """Iterations of the L-BFGS solver."""


@dataclass
class TfidfModel:
    """TF-IDF features (sklearn's formula: optional 1 + log tf, times idf, L2-normalised) and linear logits: one
    softmax over them for single-label runs, a sigmoid per label (one-vs-rest) for multi-label runs."""

    vocabulary: list[str]
    idf: np.ndarray
    weights: np.ndarray
    """[num_labels, num_features]: one row per label, so binary and multi-class share one softmax."""
    bias: np.ndarray
    ngram_max: int
    lowercase: bool
    sublinear_tf: bool
    token_pattern: str

    def features(self, documents: list[str]) -> Any:
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.preprocessing import normalize

        counter = CountVectorizer(
            vocabulary={term: index for index, term in enumerate(self.vocabulary)},
            ngram_range=(1, self.ngram_max),
            lowercase=self.lowercase,
            token_pattern=self.token_pattern,
            dtype=np.float64,
        )
        counts = counter.transform(documents).tocsr()
        if self.sublinear_tf:
            np.log(counts.data, counts.data)
            counts.data += 1.0
        weighted = counts.multiply(self.idf.reshape(1, -1)).tocsr()
        return normalize(weighted, norm="l2", copy=False)

    def logits(self, documents: list[str]) -> np.ndarray:
        if not documents:
            return np.zeros((0, len(self.bias)))
        return np.asarray(self.features(documents) @ self.weights.T) + self.bias

    def predict_logits(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> np.ndarray:
        """Logits (float64) for texts and optional pairs, in input order."""
        return self.logits(documents(texts, pairs))

    def run_facts(self) -> dict[str, Any]:
        # A label absent from the training split has no weights (its bias is -inf): it is not a parameter.
        parameters = int(np.isfinite(self.bias).sum() * (len(self.vocabulary) + 1))
        return {
            "model": "tfidf",
            "trainable_params": parameters,
            "total_params": parameters,
            "trainable_percent": 100.0,
            "tfidf_features": len(self.vocabulary),
            "device": "cpu",
            "precision": "fp64",
        }

    def environment(self) -> dict[str, Any]:
        import sklearn

        return {"python": platform.python_version(), "scikit-learn": sklearn.__version__, "device": "cpu"}

    def save(self, directory: Path) -> None:
        from safetensors.numpy import save_file

        save_file(
            {"idf": self.idf, "weights": np.ascontiguousarray(self.weights), "bias": self.bias},
            str(directory / WEIGHTS_FILE),
        )
        runs.write_json(directory / VOCABULARY_FILE, self.vocabulary)
        runs.write_json(
            directory / SETTINGS_FILE,
            {
                "ngram_max": self.ngram_max,
                "lowercase": self.lowercase,
                "sublinear_tf": self.sublinear_tf,
                "token_pattern": self.token_pattern,
            },
        )

    @classmethod
    def load(cls, directory: Path) -> TfidfModel:
        from safetensors.numpy import load_file

        missing = [name for name in (WEIGHTS_FILE, VOCABULARY_FILE, SETTINGS_FILE) if not (directory / name).is_file()]
        if missing:
            raise RunError(f"{directory} is incomplete: missing {', '.join(missing)}.", "Retrain the tfidf run.")
        arrays = load_file(str(directory / WEIGHTS_FILE))
        settings = runs.read_json(directory / SETTINGS_FILE)
        return cls(
            vocabulary=list(runs.read_json(directory / VOCABULARY_FILE)),
            idf=arrays["idf"],
            weights=arrays["weights"],
            bias=arrays["bias"],
            ngram_max=int(settings["ngram_max"]),
            lowercase=bool(settings["lowercase"]),
            sublinear_tf=bool(settings["sublinear_tf"]),
            token_pattern=str(settings["token_pattern"]),
        )


def documents(texts: Sequence[str], pairs: Sequence[str] | None = None) -> list[str]:
    """One document per input; a pair becomes ``text [SEP] text_pair``."""
    if pairs is None:
        return list(texts)
    if len(pairs) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(pairs)} pairs")
    return [f"{a}{PAIR_SEPARATOR}{b}" for a, b in zip(texts, pairs, strict=True)]


def fit_tfidf(train: pd.DataFrame, num_labels: int, options: TfidfConfig, seed: int) -> TfidfModel:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(
        ngram_range=(1, options.ngram_max),
        lowercase=options.lowercase,
        min_df=options.min_df,
        max_features=options.max_features,
        sublinear_tf=options.sublinear_tf,
        dtype=np.float64,
    )
    texts = documents(train["text"].tolist(), train["text_pair"].tolist() if "text_pair" in train else None)
    vectorizer.fit(texts)
    vocabulary = [""] * len(vectorizer.vocabulary_)
    for term, index in vectorizer.vocabulary_.items():
        vocabulary[index] = term
    model = TfidfModel(
        vocabulary=vocabulary,
        idf=np.asarray(vectorizer.idf_, dtype=np.float64),
        weights=np.zeros((num_labels, len(vocabulary))),
        bias=np.zeros(num_labels),
        ngram_max=options.ngram_max,
        lowercase=options.lowercase,
        sublinear_tf=options.sublinear_tf,
        token_pattern=vectorizer.token_pattern,
    )
    if is_multi_label_frame(train):
        return _fit_one_vs_rest(
            model, model.features(texts), multi_hot(train["label"].tolist(), num_labels), options, seed
        )
    labels = train["label"].to_numpy()
    classifier = LogisticRegression(C=options.c, max_iter=options.max_iter, random_state=seed)
    classifier.fit(model.features(texts), labels)
    classes = classifier.classes_.astype(int)
    if len(classes) == 2:
        # sklearn's binary model is sigmoid(w.x + b) = softmax([0, w.x + b]): the first class keeps zeros.
        rows = {int(classes[1]): (classifier.coef_[0], classifier.intercept_[0])}
        model.bias[:] = -np.inf
        model.bias[classes[0]] = 0.0
    else:
        rows = {int(c): (classifier.coef_[i], classifier.intercept_[i]) for i, c in enumerate(classes)}
        # A label absent from a subsampled train split can never be predicted.
        model.bias[:] = -np.inf
    for label, (weights, bias) in rows.items():
        model.weights[label] = weights
        model.bias[label] = bias
    return model


#: The logit of a label every training row carries (its sigmoid is 1 to float precision); +inf is not a logit the
#: calibration accepts.
ALWAYS_LOGIT = 30.0


def _fit_one_vs_rest(
    model: TfidfModel, features: Any, targets: np.ndarray, options: TfidfConfig, seed: int
) -> TfidfModel:
    """Multi-label: one binary logistic regression per label on the same features (one-vs-rest); each label's
    logit is its own ``w.x + b``, read through a sigmoid. A label no training row carries gets a bias of -inf (never
    predicted), one every row carries a constant logit of :data:`ALWAYS_LOGIT`."""
    from sklearn.linear_model import LogisticRegression

    for label in range(targets.shape[1]):
        column = targets[:, label]
        positives = int(column.sum())
        if positives == 0:
            model.bias[label] = -np.inf
        elif positives == len(column):
            model.bias[label] = ALWAYS_LOGIT
        else:
            classifier = LogisticRegression(C=options.c, max_iter=options.max_iter, random_state=seed)
            classifier.fit(features, column)
            model.weights[label] = classifier.coef_[0]
            model.bias[label] = classifier.intercept_[0]
    return model


def load_tfidf(directory: Path) -> TfidfModel:
    return TfidfModel.load(Path(directory))


register_method(
    Method(
        "tfidf",
        TfidfConfig,
        description="Baseline: TF-IDF + logistic regression (scikit-learn).",
        required_files=(WEIGHTS_FILE, VOCABULARY_FILE, SETTINGS_FILE),
        fit=fit_tfidf,
        load_predictor=load_tfidf,
        uses_encoder=False,
    )
)
