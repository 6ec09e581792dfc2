"""Backbones: the ``Backbone`` base and one module per architecture."""

from presetforge.backbones.backbone import Backbone
from presetforge.backbones.bert import BertBackbone
from presetforge.backbones.gemma import GemmaBackbone
from presetforge.backbones.gemma2 import Gemma2Backbone
from presetforge.backbones.gemma3 import Gemma3Backbone
from presetforge.backbones.gpt2 import GPT2Backbone
from presetforge.backbones.llama import LlamaBackbone

__all__ = [
    "Backbone",
    "BertBackbone",
    "GPT2Backbone",
    "Gemma2Backbone",
    "Gemma3Backbone",
    "GemmaBackbone",
    "LlamaBackbone",
]
