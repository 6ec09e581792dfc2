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
    ``presetforge`` command's help, ``list`` and ``publish``) does not import Keras or torch.

    This module is the package's public API, the one layer above both the classes and the
    converters, so it is where they are put together: the classes it hands out convert a raw
    Hugging Face checkpoint on load (``Backbone.from_preset("hf://org/repo")``), as keras-hub's do.
    """
    if name in _BACKBONES:
        import presetforge.backbones as module

        base = module.Backbone
    elif name == "Tokenizer":
        import presetforge.tokenizers as module

        base = module.Tokenizer
    else:
        raise AttributeError(f"module 'presetforge' has no attribute {name!r}")
    base.convert_checkpoint = staticmethod(_convert_on_load)  # the family classes inherit it
    value = globals()[name] = getattr(module, name)
    return value


def _convert_on_load(checkpoint_dir):
    """The converters' cached convert-on-load, imported when a raw checkpoint is first met."""
    from presetforge.converters.on_load import convert_on_load

    return convert_on_load(checkpoint_dir)


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
