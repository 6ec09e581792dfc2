"""RoBERTa (``model_type`` ``roberta``) → ``RobertaBackbone``: BERT's tensors and flags, a pooler only
where the checkpoint has one, positions counted past the padding id."""

from presetforge.backbones import RobertaBackbone
from presetforge.converters.base import register
from presetforge.converters.bert import ENCODER_TENSORS, POOLER_TENSORS, BertConverter
from presetforge.errors import ConversionError


@register("roberta")
class RobertaConverter(BertConverter):
    backbone_cls = RobertaBackbone
    default_vocabulary_size = 50265  # RobertaConfig's
    prefixes = ("roberta.",)  # RobertaForMaskedLM, RobertaForSequenceClassification …
    ignore = (
        r"lm_head\..*",  # the masked-LM head (its decoder tied to the embeddings)
        r"embeddings\.(position_ids|token_type_ids)",  # index buffers
    )
    irrelevant = (*BertConverter.irrelevant, "output_past")  # a cache flag of old configs
    tensors = ENCODER_TENSORS

    def backbone_config(self, config):
        pad = config.get("pad_token_id", 1)
        if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
            raise ConversionError(
                f"{self.model_type} config sets pad_token_id={pad!r}; positions are counted past the padding id, "
                "so it must be a non-negative integer"
            )
        rows = config.get("max_position_embeddings", 512)
        if rows - pad - 1 < 1:
            raise ConversionError(
                f"{self.model_type} config has max_position_embeddings={rows!r} with pad_token_id={pad}: "
                f"positions start at row {pad + 1}, so no token has a position row"
            )
        return {
            **super().backbone_config(config),
            "vocabulary_size": config.get("vocab_size", self.default_vocabulary_size),
            "max_sequence_length": rows - pad - 1,
            "pad_token_id": pad,
        }

    def checkpoint_arguments(self, tensor_names):
        # RobertaModel has a pooler, its task heads do not, and released checkpoints differ: the
        # backbone has one exactly when the checkpoint does. (transformers' AutoModel builds one
        # either way, random when absent; the gate compares only the stages our backbone has.)
        return {"add_pooling_layer": "pooler.dense.weight" in tensor_names}

    def tensor_map(self, arguments):
        return {**self.tensors, **POOLER_TENSORS} if arguments.get("add_pooling_layer") else self.tensors
