"""Gemma 3 text (``model_type`` ``gemma3_text``) → ``Gemma3Backbone``."""

from presetforge.backbones.gemma3 import Gemma3Backbone
from presetforge.converters.base import Converter, register
from presetforge.converters.gemma import GemmaConverter, activation, causal, gemma_rope
from presetforge.converters.gemma2 import Gemma2Converter, layer_types, sandwich_tensors, sliding_window
from presetforge.errors import ConversionError

_A = "transformer_layer_{i}/self_attention"

# Each layer type's rope base when the config names none, as transformers' Gemma3TextConfig has it.
DEFAULT_THETA = {"full_attention": 1000000.0, "sliding_attention": 10000.0}


def gemma3_layer_types(config, num_layers):
    """The layer types, derived from ``sliding_window_pattern`` (every n-th layer global) where the
    config has no ``layer_types``, as transformers does. It ignores the private ``_sliding_window_pattern``
    it writes beside them; that one must not say otherwise where the pattern decides."""
    pattern, private = config.get("sliding_window_pattern", 6), config.get("_sliding_window_pattern")
    if config.get("layer_types") is not None:
        return layer_types(config, num_layers, None)  # both patterns are ignored then
    if not (isinstance(pattern, int) and pattern > 0):
        raise ConversionError(f"sliding_window_pattern={pattern!r} is not a positive integer")
    if private is not None and private != pattern:
        raise ConversionError(
            f"_sliding_window_pattern={private!r} disagrees with sliding_window_pattern={pattern!r}, "
            "which transformers derives the layer types from"
        )
    derived = ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(num_layers)]
    return layer_types(config, num_layers, derived)


@register("gemma3_text")
class Gemma3Converter(Converter):
    backbone_cls = Gemma3Backbone
    prefixes = GemmaConverter.prefixes
    ignore = GemmaConverter.ignore
    required = {
        "attn_logit_softcapping": (None, "soft-caps attention scores, which transformers' Gemma 3 never applies"),
    }
    irrelevant = Gemma2Converter.irrelevant
    tensors = {
        **sandwich_tensors(),
        "layers.{i}.self_attn.q_norm.weight": f"{_A}/query_norm/scale",
        "layers.{i}.self_attn.k_norm.weight": f"{_A}/key_norm/scale",
    }

    def backbone_config(self, config):
        causal(config)
        num_layers = config.get("num_hidden_layers", 26)
        types = gemma3_layer_types(config, num_layers)
        return dict(
            vocabulary_size=config.get("vocab_size", 262208),
            num_layers=num_layers,
            num_query_heads=config.get("num_attention_heads", 8),
            hidden_dim=config.get("hidden_size", 2304),
            intermediate_dim=config.get("intermediate_size", 9216),
            num_key_value_heads=config.get("num_key_value_heads", 4),
            head_dim=config.get("head_dim", 256),
            layer_types=types,
            sliding_window_size=sliding_window(config, types, 4096),
            query_pre_attn_scalar=config.get("query_pre_attn_scalar", 256),
            final_logit_soft_cap=config.get("final_logit_softcapping"),
            rope={t: gemma_rope(config, layer_type=t, default_theta=theta) for t, theta in DEFAULT_THETA.items()},
            layer_norm_epsilon=config.get("rms_norm_eps", 1e-6),
            activation=activation(self, config, "hidden_activation", "hidden_act"),
            attention_bias=config.get("attention_bias", False),
            tie_word_embeddings=config.get("tie_word_embeddings", True),
            max_sequence_length=config.get("max_position_embeddings", 131072),
        )

    tensor_map = GemmaConverter.tensor_map
    reference_stages = GemmaConverter.reference_stages
