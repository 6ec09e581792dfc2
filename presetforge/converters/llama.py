"""Llama (``model_type`` ``llama``) → ``LlamaBackbone``."""

from presetforge.backbones.llama import LlamaBackbone
from presetforge.converters.base import HF_ACTIVATIONS, Converter, register, transpose
from presetforge.converters.rope_config import rope_parameters
from presetforge.errors import ConversionError

_L = "transformer_layer_{i}"
_A = f"{_L}/self_attention"
_F = f"{_L}/feedforward"


def decoder_tensors(prefix="layers.{i}"):
    """The tensors of a Llama-shaped decoder (without biases), shared by the families built like it."""
    return {
        "embed_tokens.weight": "token_embedding/embeddings",
        f"{prefix}.input_layernorm.weight": f"{_L}/self_attention_layer_norm/scale",
        f"{prefix}.self_attn.q_proj.weight": transpose(f"{_A}/query/kernel"),
        f"{prefix}.self_attn.k_proj.weight": transpose(f"{_A}/key/kernel"),
        f"{prefix}.self_attn.v_proj.weight": transpose(f"{_A}/value/kernel"),
        f"{prefix}.self_attn.o_proj.weight": transpose(f"{_A}/attention_output/kernel"),
        f"{prefix}.post_attention_layernorm.weight": f"{_L}/feedforward_layer_norm/scale",
        f"{prefix}.mlp.gate_proj.weight": transpose(f"{_F}/feedforward_gate/kernel"),
        f"{prefix}.mlp.up_proj.weight": transpose(f"{_F}/feedforward_intermediate/kernel"),
        f"{prefix}.mlp.down_proj.weight": transpose(f"{_F}/feedforward_output/kernel"),
        "norm.weight": "layer_norm/scale",
    }


def bias_tensors(projections, prefix="layers.{i}"):
    """``{upstream bias: variable}`` for the named projections (``q_proj`` …, ``gate_proj`` …)."""
    names = {
        "q_proj": f"{_A}/query/bias",
        "k_proj": f"{_A}/key/bias",
        "v_proj": f"{_A}/value/bias",
        "o_proj": f"{_A}/attention_output/bias",
        "gate_proj": f"{_F}/feedforward_gate/bias",
        "up_proj": f"{_F}/feedforward_intermediate/bias",
        "down_proj": f"{_F}/feedforward_output/bias",
    }
    module = lambda p: "self_attn" if p.endswith(("q_proj", "k_proj", "v_proj", "o_proj")) else "mlp"  # noqa: E731
    return {f"{prefix}.{module(p)}.{p}.bias": names[p] for p in projections}


def whole_head_rope(config):
    """The canonical rope of a family whose attention rotates whole heads: a partial rotary factor,
    at the top level or in the rope dict, is refused (transformers' Llama-shaped attention ignores it
    for default rope and cannot apply the shorter tables of the other types)."""
    rope = rope_parameters(config)
    if "partial_rotary_factor" in rope:
        raise ConversionError(
            f"partial_rotary_factor={rope['partial_rotary_factor']!r} rotates only part of each head, "
            "which this family's attention does not do"
        )
    return rope


def untied_head(arguments):
    """The LM head's tensor when it is not tied to the token embedding."""
    if arguments["tie_word_embeddings"]:
        return {}
    return {"lm_head.weight": transpose("token_embedding/reverse_embeddings")}


@register("llama")
class LlamaConverter(Converter):
    backbone_cls = LlamaBackbone
    prefixes = ("model.",)  # LlamaForCausalLM and friends
    ignore = (
        r"lm_head\.weight",  # when tied to embed_tokens (an untied head is converted, see tensor_map)
        r"layers\.\d+\.self_attn\.rotary_emb\.inv_freq",  # a buffer older checkpoints saved
    )
    irrelevant = (
        "attention_dropout",  # dropout in training
        # Splits the projections into this many slices in older transformers: the same sums, reassociated.
        "pretraining_tp",
    )
    tensors = decoder_tensors()

    def backbone_config(self, config):
        heads = config.get("num_attention_heads", 32)
        hidden = config.get("hidden_size", 4096)
        return dict(
            vocabulary_size=config.get("vocab_size", 32000),
            num_layers=config.get("num_hidden_layers", 32),
            num_query_heads=heads,
            hidden_dim=hidden,
            intermediate_dim=config.get("intermediate_size", 11008),
            num_key_value_heads=config.get("num_key_value_heads") or heads,
            head_dim=config.get("head_dim") or hidden // heads,
            rope=whole_head_rope(config),
            layer_norm_epsilon=config.get("rms_norm_eps", 1e-6),
            activation=self.pick(config, "hidden_act", HF_ACTIVATIONS, default="silu"),
            attention_bias=config.get("attention_bias", False),
            mlp_bias=config.get("mlp_bias", False),
            tie_word_embeddings=config.get("tie_word_embeddings", False),
            max_sequence_length=config.get("max_position_embeddings", 2048),
        )

    def tensor_map(self, arguments):
        biases = {}
        if arguments["attention_bias"]:
            biases |= bias_tensors(("q_proj", "k_proj", "v_proj", "o_proj"))
        if arguments["mlp_bias"]:
            biases |= bias_tensors(("gate_proj", "up_proj", "down_proj"))
        return {**self.tensors, **biases, **untied_head(arguments)}

    def reference_stages(self, model):
        blocks = {f"layer_{i}": block for i, block in enumerate(model.layers)}
        return {"embeddings": model.embed_tokens, **blocks, "final": model.norm}
