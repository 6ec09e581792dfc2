"""Qwen3: Qwen2's decoder with queries and keys RMS-normalised per head, and no biases by default."""

import keras

from presetforge.backbones.decoder import DecoderBackbone, DecoderBlock
from presetforge.backbones.layers import ReversibleEmbedding
from presetforge.backbones.llama import DEFAULT_ROPE
from presetforge.backbones.norms import RMSNormalization
from presetforge.backbones.qwen2 import layer_windows
from presetforge.backbones.rotary import RotaryEmbedding


@keras.saving.register_keras_serializable(package="presetforge")
class Qwen3Backbone(DecoderBackbone):
    """Qwen3 decoder; inputs ``token_ids`` and ``padding_mask``, output the final hidden states.

    Arguments follow keras-hub's ``Qwen3Backbone`` (``head_dim`` explicit,
    ``sliding_window_size`` …) with what its upstream config can set besides:
    ``rope`` (the canonical rope parameters, any rope type), ``activation``,
    ``attention_bias`` (on all four projections) and ``layer_types`` (as for
    ``Qwen2Backbone``). The per-head query/key norms use ``layer_norm_epsilon``,
    as upstream's do. Logits: ``backbone.logits(hidden)``.
    """

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_query_heads,
        head_dim,
        hidden_dim,
        intermediate_dim,
        num_key_value_heads=None,
        rope=None,
        layer_norm_epsilon=1e-6,
        activation="silu",
        attention_bias=False,
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
            query_key_value_bias=attention_bias,
            output_bias=attention_bias,
            query_key_norm_epsilon=layer_norm_epsilon,
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
