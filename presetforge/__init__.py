"""presetforge: verified Keras 3 presets from upstream Hugging Face checkpoints.

Keras reads ``KERAS_BACKEND`` once, at its first import, so the default (torch)
is set here, before any submodule imports Keras.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

from presetforge.backbones import (  # noqa: E402
    Backbone,
    BertBackbone,
    DistilBertBackbone,
    Gemma2Backbone,
    Gemma3Backbone,
    GemmaBackbone,
    GPT2Backbone,
    LlamaBackbone,
    MistralBackbone,
    Phi3Backbone,
    Qwen2Backbone,
    Qwen3Backbone,
    RobertaBackbone,
    XLMRobertaBackbone,
)
from presetforge import converters  # noqa: E402, F401  (lets from_preset convert raw HF checkpoints)
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
from presetforge.tokenizers import Tokenizer  # noqa: E402
from presetforge.version import __version__  # noqa: E402

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
