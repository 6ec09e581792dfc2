"""Gemma 2 (``model_type`` ``gemma2``) → ``Gemma2Backbone``; the four-norm tensors and layer types Gemma 3 shares."""

from presetforge.backbones.gemma2 import LAYER_TYPES, Gemma2Backbone
from presetforge.converters.base import Converter, register
from presetforge.converters.gemma import GemmaConverter, activation, causal, gemma_rope
from presetforge.converters.llama import decoder_tensors
from presetforge.errors import ConversionError

_L = "transformer_layer_{i}"


def sandwich_tensors():
    """Gemma 2's and 3's tensors: Llama's names, but ``post_attention_layernorm`` really follows attention
    and two more norms surround the feed-forward."""
    return {
        **decoder_tensors(),
        "layers.{i}.post_attention_layernorm.weight": f"{_L}/post_attention_layer_norm/scale",
        "layers.{i}.pre_feedforward_layernorm.weight": f"{_L}/feedforward_layer_norm/scale",
        "layers.{i}.post_feedforward_layernorm.weight": f"{_L}/post_feedforward_layer_norm/scale",
    }


def layer_types(config, num_layers, derived):
    """``config["layer_types"]``, or where it is absent ``derived`` (what transformers derives): one
    implemented type per layer, else ``ConversionError``."""
    types = config.get("layer_types")
    if types is None:
        types = derived
    if not isinstance(types, list) or len(types) != num_layers:
        raise ConversionError(f"layer_types must list one type for each of the {num_layers} layers: {types!r}")
    unknown = sorted(set(map(str, types)) - set(LAYER_TYPES))
    if unknown:
        raise ConversionError(
            f"layer type {unknown[0]!r} is not implemented; presetforge implements {', '.join(LAYER_TYPES)}"
        )
    return types


def sliding_window(config, types, default):
    """The window of the sliding layers; transformers cannot run sliding layers without one."""
    window = config.get("sliding_window", default)
    if "sliding_attention" in types and not (isinstance(window, int) and window > 0):
        raise ConversionError(
            f"sliding_window={window!r} is not a positive integer, and sliding_attention layers need one"
        )
    return window


@register("gemma2")
class Gemma2Converter(Converter):
    backbone_cls = Gemma2Backbone
    prefixes = GemmaConverter.prefixes
    ignore = GemmaConverter.ignore
    irrelevant = (
        "attention_dropout",  # dropout in training
        "cache_implementation",  # the key/value cache generation uses
    )
    tensors = sandwich_tensors()

    def backbone_config(self, config):
        causal(config)
        num_layers = config.get("num_hidden_layers", 26)
        # Without layer_types, transformers alternates: sliding first.
        alternating = [("sliding_attention", "full_attention")[i % 2] for i in range(num_layers)]
        types = layer_types(config, num_layers, alternating)
        window = sliding_window(config, types, 4096)
        older = config.get("sliding_window_size")  # early Gemma 2 configs name the window twice
        if older is not None and older != window:
            raise ConversionError(f"sliding_window_size={older!r} disagrees with sliding_window={window!r}")
        return dict(
            vocabulary_size=config.get("vocab_size", 256000),
            num_layers=num_layers,
            num_query_heads=config.get("num_attention_heads", 8),
            hidden_dim=config.get("hidden_size", 2304),
            intermediate_dim=config.get("intermediate_size", 9216),
            num_key_value_heads=config.get("num_key_value_heads", 4),
            head_dim=config.get("head_dim", 256),
            layer_types=types,
            sliding_window_size=window,
            query_pre_attn_scalar=config.get("query_pre_attn_scalar", 256),
            attention_logit_soft_cap=config.get("attn_logit_softcapping", 50.0),
            final_logit_soft_cap=config.get("final_logit_softcapping", 30.0),
            rope=gemma_rope(config),
            layer_norm_epsilon=config.get("rms_norm_eps", 1e-6),
            activation=activation(self, config, "hidden_activation", "hidden_act"),
            attention_bias=config.get("attention_bias", False),
            tie_word_embeddings=config.get("tie_word_embeddings", True),
            max_sequence_length=config.get("max_position_embeddings", 8192),
        )

    tensor_map = GemmaConverter.tensor_map  # the attention biases and an untied head, as Gemma's
    reference_stages = GemmaConverter.reference_stages
