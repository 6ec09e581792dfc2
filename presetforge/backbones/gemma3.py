"""Gemma 3 (text): Gemma 2's block with normalised queries and keys, and one rope per layer type."""

import keras

from presetforge.backbones.decoder import DecoderBackbone
from presetforge.backbones.gemma2 import Gemma2DecoderBlock, sliding_windows
from presetforge.backbones.layers import ReversibleEmbedding
from presetforge.backbones.norms import RMSNormalization
from presetforge.backbones.rotary import RotaryEmbedding

DEFAULT_ROPE = {
    "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
    "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
}


@keras.saving.register_keras_serializable(package="presetforge")
class Gemma3Backbone(DecoderBackbone):
    """Gemma 3 text decoder; inputs ``token_ids`` and ``padding_mask``, output the final hidden states.

    Arguments as ``Gemma2Backbone``'s, except: ``rope`` maps each layer type to
    its canonical rope parameters (global layers use a longer base, and the
    larger models scale it; sliding layers keep their own), and queries and keys
    are RMS-normalised per head before rotation. There is no attention
    soft-capping: transformers' Gemma 3 applies none, whatever its config says.
    """

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_query_heads,
        hidden_dim,
        intermediate_dim,
        num_key_value_heads=None,
        head_dim=256,
        layer_types=None,
        sliding_window_size=None,
        query_pre_attn_scalar=None,
        final_logit_soft_cap=None,
        rope=None,
        layer_norm_epsilon=1e-6,
        activation="gelu_approximate",
        attention_bias=False,
        tie_word_embeddings=True,
        max_sequence_length=131072,
        dropout=0.0,
        dtype=None,
        **kwargs,
    ):
        policy = self._policy(dtype)
        num_key_value_heads = num_key_value_heads or num_query_heads
        layer_types = list(layer_types or ["full_attention"] * num_layers)
        query_pre_attn_scalar = query_pre_attn_scalar or head_dim
        rope = rope or DEFAULT_ROPE
        token_embedding = ReversibleEmbedding(
            vocabulary_size, hidden_dim, tie_weights=tie_word_embeddings, logit_soft_cap=final_logit_soft_cap,
            name="token_embedding", dtype=policy,
        )
        windows = sliding_windows(layer_types, num_layers, sliding_window_size)
        # One table per layer type in use, shared by that type's blocks.
        rotaries = {
            t: RotaryEmbedding(head_dim, rope[t], name=f"rotary_embedding_{t}", dtype=policy)
            for t in dict.fromkeys(layer_types)
        }
        attention = dict(
            num_query_heads=num_query_heads,
            num_key_value_heads=num_key_value_heads,
            head_dim=head_dim,
            hidden_dim=hidden_dim,
            query_key_value_bias=attention_bias,
            output_bias=attention_bias,
            query_scale=query_pre_attn_scalar**-0.5,
            query_key_norm_epsilon=layer_norm_epsilon,
            norm_unit_offset=True,
        )
        feedforward = dict(hidden_dim=hidden_dim, intermediate_dim=intermediate_dim, activation=activation)
        blocks = [
            Gemma2DecoderBlock(
                {**attention, "sliding_window": window}, feedforward, layer_norm_epsilon, dropout,
                name=f"transformer_layer_{i}", dtype=policy,
            )
            for i, window in enumerate(windows)
        ]
        layer_norm = RMSNormalization(layer_norm_epsilon, unit_offset=True, name="layer_norm", dtype=policy)
        self._build(
            locals(), token_embedding, blocks, [rotaries[t] for t in layer_types], layer_norm, embedding_scale=hidden_dim**0.5
        )
