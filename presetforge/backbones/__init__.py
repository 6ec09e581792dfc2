"""Backbones: the ``Backbone`` base and one module per architecture."""

from presetforge.backbones.backbone import Backbone
from presetforge.backbones.bert import BertBackbone
from presetforge.backbones.distil_bert import DistilBertBackbone
from presetforge.backbones.gpt2 import GPT2Backbone
from presetforge.backbones.llama import LlamaBackbone
from presetforge.backbones.phi3 import Phi3Backbone
from presetforge.backbones.roberta import RobertaBackbone
from presetforge.backbones.xlm_roberta import XLMRobertaBackbone

__all__ = [
    "Backbone",
    "BertBackbone",
    "DistilBertBackbone",
    "GPT2Backbone",
    "LlamaBackbone",
    "Phi3Backbone",
    "RobertaBackbone",
    "XLMRobertaBackbone",
]
