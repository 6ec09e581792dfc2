"""BERT (``model_type`` ``bert``) → ``BertBackbone``."""

from presetforge.backbones import BertBackbone
from presetforge.converters.base import HF_ACTIVATIONS, Converter, register, transpose

_L = "transformer_layer_{i}"
_E = "encoder.layer.{i}"

# BERT's module names, which RoBERTa and XLM-RoBERTa keep; torch Linear weights are
# [out, in], Keras Dense kernels [in, out].
ENCODER_TENSORS = {
    "embeddings.word_embeddings.weight": "token_embedding/embeddings",
    "embeddings.position_embeddings.weight": "position_embedding/embeddings",
    "embeddings.token_type_embeddings.weight": "segment_embedding/embeddings",
    "embeddings.LayerNorm.weight": "embeddings_layer_norm/gamma",
    "embeddings.LayerNorm.bias": "embeddings_layer_norm/beta",
    f"{_E}.attention.self.query.weight": transpose(f"{_L}/self_attention/query/kernel"),
    f"{_E}.attention.self.query.bias": f"{_L}/self_attention/query/bias",
    f"{_E}.attention.self.key.weight": transpose(f"{_L}/self_attention/key/kernel"),
    f"{_E}.attention.self.key.bias": f"{_L}/self_attention/key/bias",
    f"{_E}.attention.self.value.weight": transpose(f"{_L}/self_attention/value/kernel"),
    f"{_E}.attention.self.value.bias": f"{_L}/self_attention/value/bias",
    f"{_E}.attention.output.dense.weight": transpose(f"{_L}/self_attention/attention_output/kernel"),
    f"{_E}.attention.output.dense.bias": f"{_L}/self_attention/attention_output/bias",
    f"{_E}.attention.output.LayerNorm.weight": f"{_L}/self_attention_layer_norm/gamma",
    f"{_E}.attention.output.LayerNorm.bias": f"{_L}/self_attention_layer_norm/beta",
    f"{_E}.intermediate.dense.weight": transpose(f"{_L}/feedforward_intermediate/kernel"),
    f"{_E}.intermediate.dense.bias": f"{_L}/feedforward_intermediate/bias",
    f"{_E}.output.dense.weight": transpose(f"{_L}/feedforward_output/kernel"),
    f"{_E}.output.dense.bias": f"{_L}/feedforward_output/bias",
    f"{_E}.output.LayerNorm.weight": f"{_L}/feedforward_layer_norm/gamma",
    f"{_E}.output.LayerNorm.bias": f"{_L}/feedforward_layer_norm/beta",
}
POOLER_TENSORS = {
    "pooler.dense.weight": transpose("pooled_dense/kernel"),
    "pooler.dense.bias": "pooled_dense/bias",
}


@register("bert")
class BertConverter(Converter):
    backbone_cls = BertBackbone
    prefixes = ("bert.",)  # BertForPreTraining, BertForMaskedLM …
    renames = ((r"LayerNorm\.gamma$", "LayerNorm.weight"), (r"LayerNorm\.beta$", "LayerNorm.bias"))  # TF-era names
    ignore = (
        r"cls\..*",  # pretraining heads (masked LM tied to the embeddings, next sentence)
        r"embeddings\.(position_ids|token_type_ids)",  # index buffers
    )
    irrelevant = (
        "attention_probs_dropout_prob", "classifier_dropout",  # dropout in training
        "tie_word_embeddings",  # ties the masked-LM head, which is not converted
    )
    required = {
        "position_embedding_type": ("absolute", "relative position embeddings"),
        "is_decoder": (False, "causal self-attention"),
        "add_cross_attention": (False, "cross-attention blocks"),
    }
    tensors = {**ENCODER_TENSORS, **POOLER_TENSORS}

    def backbone_config(self, config):
        return dict(
            vocabulary_size=config.get("vocab_size", 30522),
            num_layers=config.get("num_hidden_layers", 12),
            num_heads=config.get("num_attention_heads", 12),
            hidden_dim=config.get("hidden_size", 768),
            intermediate_dim=config.get("intermediate_size", 3072),
            dropout=config.get("hidden_dropout_prob", 0.1),
            max_sequence_length=config.get("max_position_embeddings", 512),
            num_segments=config.get("type_vocab_size", 2),
            layer_norm_epsilon=config.get("layer_norm_eps", 1e-12),
            activation=self.pick(config, "hidden_act", HF_ACTIVATIONS, default="gelu"),
        )

    def reference_stages(self, model):
        blocks = {f"layer_{i}": block for i, block in enumerate(model.encoder.layer)}
        return {"embeddings": model.embeddings, **blocks, "pooled_output": model.pooler}
