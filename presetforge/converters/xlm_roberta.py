"""XLM-RoBERTa (``model_type`` ``xlm-roberta``) → ``XLMRobertaBackbone``: RoBERTa's converter and
config, with XLMRobertaConfig's default vocabulary."""

from presetforge.backbones import XLMRobertaBackbone
from presetforge.converters.base import register
from presetforge.converters.roberta import RobertaConverter


@register("xlm-roberta")
class XLMRobertaConverter(RobertaConverter):
    backbone_cls = XLMRobertaBackbone
    default_vocabulary_size = 30522  # XLMRobertaConfig's
