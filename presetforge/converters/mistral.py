"""Mistral (``model_type`` ``mistral``) → ``MistralBackbone``."""

from presetforge.backbones.mistral import MistralBackbone
from presetforge.converters.base import HF_ACTIVATIONS, Converter, register
from presetforge.converters.llama import LlamaConverter, decoder_tensors, untied_head, whole_head_rope
from presetforge.errors import ConversionError


def sliding_window(config, default):
    """The config's ``sliding_window``: ``None`` (no window) or a positive number of positions."""
    window = config.get("sliding_window", default)
    if window is not None and (not isinstance(window, int) or isinstance(window, bool) or window <= 0):
        raise ConversionError(f"sliding_window={window!r} is not a positive integer or null")
    return window


@register("mistral")
class MistralConverter(Converter):
    backbone_cls = MistralBackbone
    prefixes = ("model.",)  # MistralForCausalLM and friends
    ignore = LlamaConverter.ignore
    irrelevant = ("attention_dropout",)  # dropout in training
    tensors = decoder_tensors()
    reference_stages = LlamaConverter.reference_stages

    def backbone_config(self, config):
        heads = config.get("num_attention_heads", 32)
        hidden = config.get("hidden_size", 4096)
        num_layers = config.get("num_hidden_layers", 32)
        window = sliding_window(config, 4096)
        # transformers' Mistral slides every layer alike and ignores layer_types (Ministral honours them):
        # a config that asks for anything else is refused rather than converted as transformers runs it.
        uniform = "full_attention" if window is None else "sliding_attention"
        layer_types = config.get("layer_types")
        if layer_types is not None and list(layer_types) != [uniform] * num_layers:
            raise ConversionError(
                f"layer_types={layer_types!r} differ from what Mistral computes with sliding_window={window!r} "
                f"({uniform} in all {num_layers} layers); transformers' Mistral ignores them"
            )
        return dict(
            vocabulary_size=config.get("vocab_size", 32000),
            num_layers=num_layers,
            num_query_heads=heads,
            hidden_dim=hidden,
            intermediate_dim=config.get("intermediate_size", 14336),
            num_key_value_heads=config.get("num_key_value_heads", 8) or heads,
            head_dim=config.get("head_dim") or hidden // heads,
            rope=whole_head_rope(config),
            layer_norm_epsilon=config.get("rms_norm_eps", 1e-6),
            activation=self.pick(config, "hidden_act", HF_ACTIVATIONS, default="silu"),
            sliding_window=window,
            tie_word_embeddings=config.get("tie_word_embeddings", False),
            max_sequence_length=config.get("max_position_embeddings", 4096 * 32),
        )

    def tensor_map(self, arguments):
        return {**self.tensors, **untied_head(arguments)}
