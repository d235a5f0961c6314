"""The TF-IDF + logistic regression baseline: train, save without pickle, reload and predict.

The model is stored as plain data, never as a pickled scikit-learn object (unpickling runs arbitrary code):

```
model/tfidf.json          vectorizer settings (n-gram range, lower-casing, token pattern, sublinear tf)
model/vocabulary.json     the terms, in feature-index order
model/tfidf.safetensors   idf [features], weights [labels, features], bias [labels] (float64)
model/labels.json         id2label, is_pair, method "tfidf" (as in every run)
```

Training fits scikit-learn's ``TfidfVectorizer`` and ``LogisticRegression``, then copies what they learned
into :class:`TfidfModel`. Training, evaluation and a reloaded run all compute features and probabilities
through that same class, so a reload reproduces the in-memory predictions exactly.
"""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from distiltune import runs
from distiltune.baselines import TfidfConfig
from distiltune.config import Config
from distiltune.data.columns import LabelSpace
from distiltune.errors import RunError
from distiltune.metrics import score_predictions, softmax
from distiltune.predict import Classifier

logger = logging.getLogger("distiltune")

#: Joins the two sentences of a pair into one document (the default token pattern keeps "sep" as a term).
PAIR_SEPARATOR = " [SEP] "
WEIGHTS_FILE = "tfidf.safetensors"
VOCABULARY_FILE = "vocabulary.json"
SETTINGS_FILE = "tfidf.json"


@dataclass
class TfidfModel:
    """TF-IDF features (sklearn's formula: optional 1 + log tf, times idf, L2-normalised) and a linear softmax."""

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
        return np.asarray(self.features(documents) @ self.weights.T) + self.bias

    def predict_proba(self, documents: list[str]) -> np.ndarray:
        if not documents:
            return np.zeros((0, len(self.bias)))
        return softmax(self.logits(documents))

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


def documents(frame: pd.DataFrame) -> list[str]:
    """One document per row; a pair becomes ``text [SEP] text_pair``."""
    if "text_pair" in frame.columns:
        return [f"{a}{PAIR_SEPARATOR}{b}" for a, b in zip(frame["text"], frame["text_pair"], strict=True)]
    return frame["text"].tolist()


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
    texts = documents(train)
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


def train_tfidf(run_dir: Path, config: Config) -> Any:
    """Fit, evaluate and write a complete run directory, like ``training.train`` does for an encoder."""
    import dataclasses

    import sklearn

    from distiltune.data import load_data
    from distiltune.data.fingerprint import splits_fingerprint
    from distiltune.plots import plot_run
    from distiltune.training import Run

    options = config.method
    if not isinstance(options, TfidfConfig):
        raise TypeError("train_tfidf needs a TfidfConfig")
    data = load_data(config.data, seed=config.train.seed)
    metric = config.train.metric or data.metric
    config = dataclasses.replace(
        config, data=data.config, train=dataclasses.replace(config.train, metric=metric, lr=None)
    )
    config.to_yaml(run_dir / runs.CONFIG_FILE)
    runs.write_json(
        run_dir / runs.ENV_FILE,
        {"python": platform.python_version(), "scikit-learn": sklearn.__version__, "device": "cpu"},
    )
    names = data.labels.names
    logger.info(
        "Dataset %s: %d train, %d validation rows; labels %s",
        config.data.dataset,
        len(data.train),
        len(data.validation),
        names,
    )

    from distiltune.memory import PeakMemory

    started = time.perf_counter()
    with PeakMemory("cpu") as peak_memory:  # process RSS, as for encoder runs on CPU
        model = fit_tfidf(data.train, len(names), options, config.train.seed)
    train_seconds = time.perf_counter() - started
    logger.info("TF-IDF: %d features; fitted in %.2f s.", len(model.vocabulary), train_seconds)

    model_dir = run_dir / runs.MODEL_DIR
    model_dir.mkdir()
    model.save(model_dir)
    runs.write_json(
        model_dir / "labels.json",
        {
            "id2label": dict(enumerate(names)),
            "max_length": config.data.max_length,
            "is_pair": data.is_pair,
            "method": "tfidf",
        },
    )

    final: dict[str, Any] = {
        "method": "tfidf",
        "model": "tfidf",
        "dataset": config.data.dataset,
        "metric_for_best": metric,
    }
    predictions: list[dict[str, Any]] = []
    for split, frame in (("validation", data.validation), ("test", data.test)):
        if frame is None:
            continue
        final[split], predictions = evaluate_tfidf(model, frame, names)
        final["predictions_split"] = split
    train_probabilities = model.predict_proba(documents(data.train))
    history_row: dict[str, Any] = {
        "epoch": 1.0,
        "step": 1,
        "train_loss": _log_loss(train_probabilities, data.train["label"].to_numpy()),
        "eval_loss": final["validation"]["loss"],
        **{
            k: v
            for k, v in final["validation"].items()
            if isinstance(v, float) and k not in ("loss", "eval_samples_per_second")
        },
    }
    runs.write_jsonl(run_dir / runs.HISTORY_FILE, [history_row])
    parameters = int(np.isfinite(model.bias).sum() * (len(model.vocabulary) + 1))
    final.update(
        {
            "best_step": 1,
            "best_epoch": 1.0,
            "train_seconds": round(train_seconds, 3),
            "train_samples_per_second": round(len(data.train) / train_seconds, 2) if train_seconds > 0 else None,
            "train_rows": len(data.train),
            "data_fingerprint": splits_fingerprint(data.splits()),
            "trainable_params": parameters,
            "total_params": parameters,
            "trainable_percent": 100.0,
            "tfidf_features": len(model.vocabulary),
            **peak_memory.as_dict(),
            "device": "cpu",
            "precision": "fp64",
        }
    )
    runs.write_jsonl(run_dir / runs.PREDICTIONS_FILE, predictions)
    runs.write_json(run_dir / runs.METRICS_FILE, final)
    plot_run(run_dir)
    logger.info("Saved the TF-IDF model to %s", model_dir)
    return Run(dir=run_dir, config=config, metrics=final, history=[history_row])


def evaluate_tfidf(
    model: TfidfModel, frame: pd.DataFrame, label_names: list[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics (with the log loss) and per-example predictions, in the format of ``evaluate_frame``."""
    started = time.perf_counter()
    probabilities = model.predict_proba(documents(frame))
    seconds = time.perf_counter() - started
    gold = frame["label"].to_numpy()
    pairs = frame["text_pair"].tolist() if "text_pair" in frame.columns else None
    metrics, rows = score_predictions(frame["text"].tolist(), pairs, gold, probabilities, label_names, seconds)
    metrics["loss"] = _log_loss(probabilities, gold)
    return metrics, rows


def _log_loss(probabilities: np.ndarray, gold: np.ndarray) -> float:
    picked = probabilities[np.arange(len(gold)), gold.astype(int)]
    return float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0))))


def is_tfidf_run(run_dir: Path) -> bool:
    labels = Path(run_dir) / runs.MODEL_DIR / "labels.json"
    return labels.is_file() and runs.read_json(labels).get("method") == "tfidf"


class TfidfClassifier(Classifier):
    """A reloaded TF-IDF run with the Classifier interface (``predict``, ``predict_proba``, ``evaluate_frame``)."""

    @classmethod
    def from_run(cls, run_dir: str | Path) -> TfidfClassifier:
        run_dir = Path(run_dir)
        if not (run_dir / runs.CONFIG_FILE).is_file():
            raise RunError(f"{run_dir} holds no config.yaml.", "Pass a folder created by distiltune train.")
        model_dir = run_dir / runs.MODEL_DIR
        info = runs.read_json(model_dir / "labels.json")
        names = [info["id2label"][str(i)] for i in range(len(info["id2label"]))]
        return cls(
            model=TfidfModel.load(model_dir),
            tokenizer=None,
            config=Config.from_yaml(run_dir / runs.CONFIG_FILE),
            labels=LabelSpace(names=names, values=names),
            max_length=int(info.get("max_length") or 0),
            is_pair=bool(info.get("is_pair")),
            device="cpu",
            precision="fp64",
            run_dir=run_dir,
        )

    def predict_logits(
        self, texts: Any, pairs: Any = None, batch_size: int | None = None, truncation_side: str | None = None
    ) -> np.ndarray:
        """The linear model's scores (-inf for a label absent from the training split); no truncation applies."""
        inputs = self._documents(texts, pairs)
        return self.model.logits(inputs) if inputs else np.zeros((0, len(self.model.bias)))

    def predict_proba(
        self, texts: Any, pairs: Any = None, batch_size: int | None = None, truncation_side: str | None = None
    ) -> np.ndarray:
        return self.model.predict_proba(self._documents(texts, pairs))

    @staticmethod
    def _documents(texts: Any, pairs: Any) -> list[str]:
        if isinstance(texts, str):
            texts = [texts]
        if isinstance(pairs, str):
            pairs = [pairs]
        frame = pd.DataFrame({"text": list(texts)})
        if pairs is not None:
            if len(pairs) != len(frame):
                raise ValueError(f"got {len(frame)} texts but {len(pairs)} pairs")
            frame["text_pair"] = list(pairs)
        return documents(frame)

    def evaluate_frame(self, frame: pd.DataFrame) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return evaluate_tfidf(self.model, frame, self.label_names)
