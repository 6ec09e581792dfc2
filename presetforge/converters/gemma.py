"""Gemma (``model_type`` ``gemma``) → ``GemmaBackbone``; and the config readings Gemma 2 and 3 share.

Defaults are those of transformers' config classes, which are not Llama's:
``head_dim`` is 256 whatever the hidden size, and a missing
``num_key_value_heads`` is the class's own number, not the query heads'.
"""

from presetforge.backbones.gemma import GemmaBackbone
from presetforge.converters.base import HF_ACTIVATIONS, Converter, register
from presetforge.converters.llama import LlamaConverter, bias_tensors, decoder_tensors, untied_head
from presetforge.converters.rope_config import rope_parameters
from presetforge.errors import ConversionError

TANH_GELU = "gelu_pytorch_tanh"


def activation(converter, config, key, ignored, legacy_gelu=False):
    """The backbone activation ``config[key]`` names (tanh GELU by default).

    Gemma configs often carry a second activation key, ``ignored``, which the
    installed transformers never reads (older versions read Gemma's
    ``hidden_activation`` first): when set it must name the same function, or
    which one the checkpoint means is a guess, and it is refused. With
    ``legacy_gelu`` a plain ``gelu`` is the tanh approximation, as transformers
    reads Gemma's first configs.
    """
    table = {**HF_ACTIVATIONS, "gelu": HF_ACTIVATIONS[TANH_GELU]} if legacy_gelu else HF_ACTIVATIONS
    chosen = converter.pick(config, key, table, default=TANH_GELU)
    other = config.get(ignored)
    if other is not None and HF_ACTIVATIONS.get(other) != chosen:
        raise ConversionError(
            f"{converter.model_type} config sets {ignored}={other!r} beside {key}={config.get(key, TANH_GELU)!r}; "
            f"transformers computes {key} and ignores {ignored}, so which one is meant is unclear: refusing to guess"
        )
    return chosen


def causal(config):
    """Refuse ``use_bidirectional_attention``: every backbone here attends causally."""
    if config.get("use_bidirectional_attention"):
        raise ConversionError(
            "config sets use_bidirectional_attention=True (tokens also attend to later ones); "
            "presetforge's Gemma backbones are causal only"
        )


def gemma_rope(config, **layer):
    """``rope_parameters`` for Gemma's rotary embedding, which rotates whole heads (no partial rotation)."""
    rope = rope_parameters(config, **layer)
    if "partial_rotary_factor" in rope:
        raise ConversionError(
            f"partial_rotary_factor={rope['partial_rotary_factor']!r}: Gemma's rotary embedding rotates whole heads"
        )
    return rope


@register("gemma")
class GemmaConverter(Converter):
    backbone_cls = GemmaBackbone
    prefixes = ("model.",)  # GemmaForCausalLM and friends
    ignore = (r"lm_head\.weight",)  # when tied to embed_tokens (an untied head is converted, see tensor_map)
    irrelevant = ("attention_dropout",)  # dropout in training
    tensors = decoder_tensors()

    def backbone_config(self, config):
        causal(config)
        return dict(
            vocabulary_size=config.get("vocab_size", 256000),
            num_layers=config.get("num_hidden_layers", 28),
            num_query_heads=config.get("num_attention_heads", 16),
            hidden_dim=config.get("hidden_size", 3072),
            intermediate_dim=config.get("intermediate_size", 24576),
            num_key_value_heads=config.get("num_key_value_heads", 16),
            head_dim=config.get("head_dim", 256),
            rope=gemma_rope(config),
            layer_norm_epsilon=config.get("rms_norm_eps", 1e-6),
            activation=activation(self, config, "hidden_act", "hidden_activation", legacy_gelu=True),
            attention_bias=config.get("attention_bias", False),
            tie_word_embeddings=config.get("tie_word_embeddings", True),
            max_sequence_length=config.get("max_position_embeddings", 8192),
        )

    def tensor_map(self, arguments):
        # attention_bias gives q, k, v and o biases; Gemma's MLP has none.
        biases = bias_tensors(("q_proj", "k_proj", "v_proj", "o_proj")) if arguments["attention_bias"] else {}
        return {**self.tensors, **biases, **untied_head(arguments)}

    # Llama's modules: embed_tokens, layers, norm. Gemma's embed_tokens scales by sqrt(hidden_size)
    # itself, so its output is the scaled embeddings, as our ``embeddings`` stage is.
    reference_stages = LlamaConverter.reference_stages
