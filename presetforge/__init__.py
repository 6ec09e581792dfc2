"""presetforge: verified Keras 3 presets from upstream Hugging Face checkpoints.

Keras reads ``KERAS_BACKEND`` once, at its first import, so the default (torch)
is set here, before any submodule imports Keras; the backbones and the tokenizer
are imported on first use (``presetforge.Backbone``), so the command line and
publishing never pay for Keras.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

from presetforge.errors import (  # noqa: E402
    ConversionError,
    GatedError,
    HandleError,
    HubError,
    InUseError,
    IntegrityError,
    LoraError,
    NotFoundError,
    OfflineError,
    PresetError,
    PresetforgeError,
    UnauthorizedError,
)
from presetforge.version import __version__  # noqa: E402

_BACKBONES = (
    "Backbone",
    "BertBackbone",
    "DistilBertBackbone",
    "Gemma2Backbone",
    "Gemma3Backbone",
    "GemmaBackbone",
    "GPT2Backbone",
    "LlamaBackbone",
    "MistralBackbone",
    "Phi3Backbone",
    "Qwen2Backbone",
    "Qwen3Backbone",
    "RobertaBackbone",
    "XLMRobertaBackbone",
)


def __getattr__(name):
    """The backbones and the tokenizer, imported on first use: ``import presetforge`` (and so the
    ``presetforge`` command's help, ``list`` and ``publish``) does not import Keras or torch."""
    import importlib

    if name in _BACKBONES:
        value = getattr(importlib.import_module("presetforge.backbones"), name)
        importlib.import_module("presetforge.converters")  # lets from_preset convert raw HF checkpoints
    elif name == "Tokenizer":
        value = importlib.import_module("presetforge.tokenizers").Tokenizer
    else:
        raise AttributeError(f"module 'presetforge' has no attribute {name!r}")
    globals()[name] = value
    return value


__all__ = [
    "Backbone",
    "BertBackbone",
    "ConversionError",
    "DistilBertBackbone",
    "Gemma2Backbone",
    "Gemma3Backbone",
    "GemmaBackbone",
    "GPT2Backbone",
    "LlamaBackbone",
    "GatedError",
    "HandleError",
    "HubError",
    "InUseError",
    "IntegrityError",
    "LoraError",
    "MistralBackbone",
    "NotFoundError",
    "OfflineError",
    "Phi3Backbone",
    "PresetError",
    "PresetforgeError",
    "Qwen2Backbone",
    "Qwen3Backbone",
    "RobertaBackbone",
    "Tokenizer",
    "UnauthorizedError",
    "XLMRobertaBackbone",
    "__version__",
]
