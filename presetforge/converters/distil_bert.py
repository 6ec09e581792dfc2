"""DistilBERT (``model_type`` ``distilbert``) → ``DistilBertBackbone``."""

from presetforge.backbones import DistilBertBackbone
from presetforge.converters.base import HF_ACTIVATIONS, Converter, register, transpose

_L = "transformer_layer_{i}"
_T = "transformer.layer.{i}"


@register("distilbert")
class DistilBertConverter(Converter):
    backbone_cls = DistilBertBackbone
    prefixes = ("distilbert.",)  # DistilBertForMaskedLM, DistilBertForSequenceClassification …
    ignore = (
        r"vocab_(transform|layer_norm|projector)\..*",  # the masked-LM head (projector tied to the embeddings)
        r"embeddings\.position_ids",  # an index buffer
    )
    irrelevant = (
        "attention_dropout", "qa_dropout", "seq_classif_dropout",  # dropout in training
        "tie_weights_", "tie_word_embeddings",  # tie the masked-LM head, which is not converted
        "output_past",  # a cache flag of old configs
        # Only initialises the position table: transformers loads the stored table over the
        # sinusoid, and the converter copies that table (the gate has a variant for it).
        "sinusoidal_pos_embds",
    )
    tensors = {
        "embeddings.word_embeddings.weight": "token_embedding/embeddings",
        "embeddings.position_embeddings.weight": "position_embedding/embeddings",
        "embeddings.LayerNorm.weight": "embeddings_layer_norm/gamma",
        "embeddings.LayerNorm.bias": "embeddings_layer_norm/beta",
        f"{_T}.attention.q_lin.weight": transpose(f"{_L}/self_attention/query/kernel"),
        f"{_T}.attention.q_lin.bias": f"{_L}/self_attention/query/bias",
        f"{_T}.attention.k_lin.weight": transpose(f"{_L}/self_attention/key/kernel"),
        f"{_T}.attention.k_lin.bias": f"{_L}/self_attention/key/bias",
        f"{_T}.attention.v_lin.weight": transpose(f"{_L}/self_attention/value/kernel"),
        f"{_T}.attention.v_lin.bias": f"{_L}/self_attention/value/bias",
        f"{_T}.attention.out_lin.weight": transpose(f"{_L}/self_attention/attention_output/kernel"),
        f"{_T}.attention.out_lin.bias": f"{_L}/self_attention/attention_output/bias",
        f"{_T}.sa_layer_norm.weight": f"{_L}/self_attention_layer_norm/gamma",
        f"{_T}.sa_layer_norm.bias": f"{_L}/self_attention_layer_norm/beta",
        f"{_T}.ffn.lin1.weight": transpose(f"{_L}/feedforward_intermediate/kernel"),
        f"{_T}.ffn.lin1.bias": f"{_L}/feedforward_intermediate/bias",
        f"{_T}.ffn.lin2.weight": transpose(f"{_L}/feedforward_output/kernel"),
        f"{_T}.ffn.lin2.bias": f"{_L}/feedforward_output/bias",
        f"{_T}.output_layer_norm.weight": f"{_L}/feedforward_layer_norm/gamma",
        f"{_T}.output_layer_norm.bias": f"{_L}/feedforward_layer_norm/beta",
    }

    def backbone_config(self, config):
        return dict(
            vocabulary_size=config.get("vocab_size", 30522),
            num_layers=config.get("n_layers", 6),
            num_heads=config.get("n_heads", 12),
            hidden_dim=config.get("dim", 768),
            intermediate_dim=config.get("hidden_dim", 4 * 768),
            dropout=config.get("dropout", 0.1),
            max_sequence_length=config.get("max_position_embeddings", 512),
            activation=self.pick(config, "activation", HF_ACTIVATIONS, default="gelu"),
        )

    def reference_stages(self, model):
        blocks = {f"layer_{i}": block for i, block in enumerate(model.transformer.layer)}
        return {"embeddings": model.embeddings, **blocks}
