"""Backbones: the ``Backbone`` base and one module per architecture."""

from presetforge.backbones.backbone import Backbone
from presetforge.backbones.bert import BertBackbone
from presetforge.backbones.gpt2 import GPT2Backbone
from presetforge.backbones.llama import LlamaBackbone
from presetforge.backbones.mistral import MistralBackbone
from presetforge.backbones.qwen2 import Qwen2Backbone
from presetforge.backbones.qwen3 import Qwen3Backbone

__all__ = [
    "Backbone",
    "BertBackbone",
    "GPT2Backbone",
    "LlamaBackbone",
    "MistralBackbone",
    "Qwen2Backbone",
    "Qwen3Backbone",
]
