"""Qwen2 (``model_type`` ``qwen2``) → ``Qwen2Backbone``."""

from presetforge.backbones.qwen2 import LAYER_TYPES, Qwen2Backbone
from presetforge.converters.base import HF_ACTIVATIONS, Converter, register
from presetforge.converters.llama import LlamaConverter, bias_tensors, decoder_tensors, untied_head, whole_head_rope
from presetforge.converters.mistral import sliding_window
from presetforge.errors import ConversionError


def qwen_layer_types(config, num_layers):
    """``(layer_types, sliding_window_size)`` as transformers' Qwen2 and Qwen3 decide them.

    The window exists only with ``use_sliding_window``. ``layer_types``, when the
    config has them, say which layers slide; older configs have none, and the
    layers from index ``max_window_layers`` on slide (when there is a window).
    """
    window = sliding_window(config, 4096)
    if not config.get("use_sliding_window", False):
        window = None
    first_sliding = config.get("max_window_layers", 28)
    layer_types = config.get("layer_types")
    if layer_types is None:
        layer_types = [
            "sliding_attention" if window is not None and i >= first_sliding else "full_attention"
            for i in range(num_layers)
        ]
    layer_types = list(layer_types)
    unknown = sorted({str(t) for t in layer_types} - set(LAYER_TYPES))
    if unknown:
        raise ConversionError(f"layer_types entry {unknown[0]!r} is not implemented; presetforge implements {LAYER_TYPES}")
    if len(layer_types) != num_layers:
        raise ConversionError(f"layer_types has {len(layer_types)} entries for {num_layers} layers")
    if window is None and "sliding_attention" in layer_types:
        raise ConversionError(
            "layer_types has sliding_attention layers but no window (use_sliding_window is false or "
            "sliding_window is null), so transformers cannot build their mask"
        )
    return layer_types, window


@register("qwen2")
class Qwen2Converter(Converter):
    backbone_cls = Qwen2Backbone
    prefixes = ("model.",)  # Qwen2ForCausalLM and friends
    ignore = LlamaConverter.ignore
    # Qwen2.5 configs say use_mrope=false; true is Qwen2-VL's multimodal rope, which Qwen2's model never applies.
    required = {"use_mrope": (False, "multimodal rotary positions, which transformers' Qwen2 does not apply")}
    irrelevant = ("attention_dropout",)  # dropout in training
    tensors = {**decoder_tensors(), **bias_tensors(("q_proj", "k_proj", "v_proj"))}
    reference_stages = LlamaConverter.reference_stages

    def backbone_config(self, config):
        heads = config.get("num_attention_heads", 32)
        hidden = config.get("hidden_size", 4096)
        num_layers = config.get("num_hidden_layers", 32)
        layer_types, window = qwen_layer_types(config, num_layers)
        return dict(
            vocabulary_size=config.get("vocab_size", 151936),
            num_layers=num_layers,
            num_query_heads=heads,
            hidden_dim=hidden,
            intermediate_dim=config.get("intermediate_size", 22016),
            num_key_value_heads=config.get("num_key_value_heads", 32) or heads,
            # Not a Qwen2Config field, but transformers' Qwen2 attention and rope honour one in config.json.
            head_dim=config.get("head_dim") or hidden // heads,
            rope=whole_head_rope(config),
            layer_norm_epsilon=config.get("rms_norm_eps", 1e-6),
            activation=self.pick(config, "hidden_act", HF_ACTIVATIONS, default="silu"),
            layer_types=layer_types,
            sliding_window_size=window,
            tie_word_embeddings=config.get("tie_word_embeddings", False),
            max_sequence_length=config.get("max_position_embeddings", 32768),
        )

    def tensor_map(self, arguments):
        return {**self.tensors, **untied_head(arguments)}
