"""Qwen2: Llama's decoder with query/key/value biases and a sliding window on the layers ``layer_types`` names."""

import keras

from presetforge.backbones.decoder import DecoderBackbone, DecoderBlock
from presetforge.backbones.layers import ReversibleEmbedding
from presetforge.backbones.llama import DEFAULT_ROPE
from presetforge.backbones.norms import RMSNormalization
from presetforge.backbones.rotary import RotaryEmbedding

LAYER_TYPES = ("full_attention", "sliding_attention")


def layer_windows(layer_types, num_layers, sliding_window_size):
    """Each layer's attention window: ``sliding_window_size`` for ``"sliding_attention"``, ``None`` for
    ``"full_attention"``; ``layer_types=None`` means every layer attends fully."""
    layer_types = list(layer_types or ["full_attention"] * num_layers)
    if len(layer_types) != num_layers or any(t not in LAYER_TYPES for t in layer_types):
        raise ValueError(f"layer_types must give one of {LAYER_TYPES} for each of {num_layers} layers: {layer_types}")
    if "sliding_attention" in layer_types and not sliding_window_size:
        raise ValueError("layer_types has sliding_attention layers but sliding_window_size is not set")
    return [sliding_window_size if t == "sliding_attention" else None for t in layer_types]


@keras.saving.register_keras_serializable(package="presetforge")
class Qwen2Backbone(DecoderBackbone):
    """Qwen2 decoder; inputs ``token_ids`` and ``padding_mask``, output the final hidden states.

    Arguments follow keras-hub's ``QwenBackbone`` (``num_query_heads``,
    ``sliding_window_size``, ``tie_word_embeddings`` …) with what its upstream
    config can set besides: an explicit ``head_dim``, ``rope`` (the canonical
    rope parameters, any rope type), ``activation``, and ``layer_types``, one
    ``"full_attention"`` or ``"sliding_attention"`` per layer (``None``: all
    full). Logits: ``backbone.logits(hidden)``.
    """

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_query_heads,
        hidden_dim,
        intermediate_dim,
        num_key_value_heads=None,
        head_dim=None,
        rope=None,
        layer_norm_epsilon=1e-6,
        activation="silu",
        layer_types=None,
        sliding_window_size=None,
        tie_word_embeddings=False,
        max_sequence_length=32768,
        dropout=0.0,
        dtype=None,
        **kwargs,
    ):
        policy = self._policy(dtype)
        num_key_value_heads = num_key_value_heads or num_query_heads
        head_dim = head_dim or hidden_dim // num_query_heads
        rope = rope or DEFAULT_ROPE
        windows = layer_windows(layer_types, num_layers, sliding_window_size)
        token_embedding = ReversibleEmbedding(
            vocabulary_size, hidden_dim, tie_weights=tie_word_embeddings, name="token_embedding", dtype=policy
        )
        rotary = RotaryEmbedding(head_dim, rope, name="rotary_embedding", dtype=policy)
        attention = dict(
            num_query_heads=num_query_heads,
            num_key_value_heads=num_key_value_heads,
            head_dim=head_dim,
            hidden_dim=hidden_dim,
            query_key_value_bias=True,
        )
        feedforward = dict(hidden_dim=hidden_dim, intermediate_dim=intermediate_dim, activation=activation)
        blocks = [
            DecoderBlock(
                {**attention, "sliding_window": window}, feedforward, layer_norm_epsilon, dropout,
                name=f"transformer_layer_{i}", dtype=policy,
            )
            for i, window in enumerate(windows)
        ]
        layer_norm = RMSNormalization(layer_norm_epsilon, name="layer_norm", dtype=policy)
        self._build(locals(), token_embedding, blocks, [rotary] * num_layers, layer_norm)
