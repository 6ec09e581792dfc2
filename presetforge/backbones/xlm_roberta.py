"""XLM-RoBERTa: RoBERTa's architecture, trained multilingually with a SentencePiece vocabulary."""

import keras

from presetforge.backbones.roberta import RobertaBackbone


@keras.saving.register_keras_serializable(package="presetforge")
class XLMRobertaBackbone(RobertaBackbone):
    """XLM-RoBERTa encoder: ``RobertaBackbone`` under keras-hub's name for it, so presets and
    ``XLMRobertaBackbone.presets`` say which model they hold."""
