"""Qwen3 (``model_type`` ``qwen3``) → ``Qwen3Backbone``."""

from presetforge.backbones.qwen3 import Qwen3Backbone
from presetforge.converters.base import HF_ACTIVATIONS, Converter, register
from presetforge.converters.llama import LlamaConverter, bias_tensors, decoder_tensors, untied_head, whole_head_rope
from presetforge.converters.qwen2 import qwen_layer_types
from presetforge.errors import ConversionError

_A = "transformer_layer_{i}/self_attention"


@register("qwen3")
class Qwen3Converter(Converter):
    backbone_cls = Qwen3Backbone
    prefixes = ("model.",)  # Qwen3ForCausalLM and friends
    ignore = LlamaConverter.ignore
    irrelevant = ("attention_dropout",)  # dropout in training
    tensors = {
        **decoder_tensors(),
        "layers.{i}.self_attn.q_norm.weight": f"{_A}/query_norm/scale",
        "layers.{i}.self_attn.k_norm.weight": f"{_A}/key_norm/scale",
    }
    reference_stages = LlamaConverter.reference_stages

    def backbone_config(self, config):
        heads = config.get("num_attention_heads", 32)
        num_layers = config.get("num_hidden_layers", 32)
        head_dim = config.get("head_dim", 128)  # Qwen3Config's default, not hidden_size / heads
        if head_dim is None:
            raise ConversionError("head_dim=None: transformers' Qwen3 attention needs an explicit head size")
        layer_types, window = qwen_layer_types(config, num_layers)
        return dict(
            vocabulary_size=config.get("vocab_size", 151936),
            num_layers=num_layers,
            num_query_heads=heads,
            head_dim=head_dim,
            hidden_dim=config.get("hidden_size", 4096),
            intermediate_dim=config.get("intermediate_size", 22016),
            num_key_value_heads=config.get("num_key_value_heads", 32) or heads,
            rope=whole_head_rope(config),
            layer_norm_epsilon=config.get("rms_norm_eps", 1e-6),
            activation=self.pick(config, "hidden_act", HF_ACTIVATIONS, default="silu"),
            attention_bias=config.get("attention_bias", False),
            layer_types=layer_types,
            sliding_window_size=window,
            tie_word_embeddings=config.get("tie_word_embeddings", False),
            max_sequence_length=config.get("max_position_embeddings", 32768),
        )

    def tensor_map(self, arguments):
        biases = bias_tensors(("q_proj", "k_proj", "v_proj", "o_proj")) if arguments["attention_bias"] else {}
        return {**self.tensors, **biases, **untied_head(arguments)}
