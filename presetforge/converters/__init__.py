"""Converters from Hugging Face checkpoints to presetforge presets, one module per upstream architecture.

``convert(source_dir, output_dir)`` picks the converter registered for the
checkpoint's ``model_type`` (``@register``), checks it covers every tensor, and
streams the weights into a preset. Adding an architecture is one module here
that subclasses ``Converter``, registers it and is imported below.
"""

from presetforge.converters.base import Converter, Rule, copy, get_converter, model_types, register, split, split_sizes, transpose, transposed
from presetforge.converters.convert import DTYPES, ConversionResult, convert

# Each import registers its converter.
from presetforge.converters import (  # noqa: F401  isort: skip
    bert, distil_bert, gemma, gemma2, gemma3, gpt2, llama, mistral, phi3, qwen2, qwen3, roberta, xlm_roberta,
)

__all__ = [
    "DTYPES",
    "ConversionResult",
    "Converter",
    "Rule",
    "convert",
    "copy",
    "get_converter",
    "model_types",
    "register",
    "split",
    "split_sizes",
    "transpose",
    "transposed",
]
