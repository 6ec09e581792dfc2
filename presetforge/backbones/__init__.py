"""Backbones: the ``Backbone`` base and one module per architecture."""

from presetforge.backbones.backbone import Backbone
from presetforge.backbones.bert import BertBackbone
from presetforge.backbones.distil_bert import DistilBertBackbone
from presetforge.backbones.gemma import GemmaBackbone
from presetforge.backbones.gemma2 import Gemma2Backbone
from presetforge.backbones.gemma3 import Gemma3Backbone
from presetforge.backbones.gpt2 import GPT2Backbone
from presetforge.backbones.llama import LlamaBackbone
from presetforge.backbones.mistral import MistralBackbone
from presetforge.backbones.phi3 import Phi3Backbone
from presetforge.backbones.qwen2 import Qwen2Backbone
from presetforge.backbones.qwen3 import Qwen3Backbone
from presetforge.backbones.roberta import RobertaBackbone
from presetforge.backbones.xlm_roberta import XLMRobertaBackbone

__all__ = [
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
]
