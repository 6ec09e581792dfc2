"""Phi-3: Llama's pre-norm block without biases, with rope that may rotate only part of each head
(``partial_rotary_factor``), LongRoPE for long contexts, and an optional sliding attention window."""

import keras

from presetforge.backbones.decoder import DecoderBackbone, DecoderBlock
from presetforge.backbones.layers import ReversibleEmbedding
from presetforge.backbones.norms import RMSNormalization
from presetforge.backbones.rotary import RotaryEmbedding

DEFAULT_ROPE = {"rope_type": "default", "rope_theta": 10000.0}


@keras.saving.register_keras_serializable(package="presetforge")
class Phi3Backbone(DecoderBackbone):
    """Phi-3 decoder; inputs ``token_ids`` and ``padding_mask``, output the final hidden states.

    Arguments follow keras-hub's ``Phi3Backbone`` (``num_query_heads``,
    ``num_key_value_heads``, ``layer_norm_epsilon`` …); where keras-hub spreads
    the rope over ``rope_max_wavelength``, ``rope_scaling_*`` and
    ``pretraining_sequence_length``, ``rope`` is the one canonical rope dict
    (``default`` or ``longrope``, with ``partial_rotary_factor`` when below 1).
    Besides: an explicit ``head_dim``, ``sliding_window`` (every layer attends to
    at most that many most recent positions), ``tie_word_embeddings``.
    Logits: ``backbone.logits(hidden)``.
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
        sliding_window=None,
        layer_norm_epsilon=1e-6,
        activation="silu",
        tie_word_embeddings=False,
        max_sequence_length=4096,
        dropout=0.0,
        dtype=None,
        **kwargs,
    ):
        policy = self._policy(dtype)
        num_key_value_heads = num_key_value_heads or num_query_heads
        head_dim = head_dim or hidden_dim // num_query_heads
        rope = rope or DEFAULT_ROPE
        token_embedding = ReversibleEmbedding(
            vocabulary_size, hidden_dim, tie_weights=tie_word_embeddings, name="token_embedding", dtype=policy
        )
        rotary = RotaryEmbedding(head_dim, rope, name="rotary_embedding", dtype=policy)
        attention = dict(
            num_query_heads=num_query_heads,
            num_key_value_heads=num_key_value_heads,
            head_dim=head_dim,
            hidden_dim=hidden_dim,
            sliding_window=sliding_window,
        )
        feedforward = dict(hidden_dim=hidden_dim, intermediate_dim=intermediate_dim, activation=activation)
        blocks = [
            DecoderBlock(attention, feedforward, layer_norm_epsilon, dropout, name=f"transformer_layer_{i}", dtype=policy)
            for i in range(num_layers)
        ]
        layer_norm = RMSNormalization(layer_norm_epsilon, name="layer_norm", dtype=policy)
        self._build(locals(), token_embedding, blocks, [rotary] * num_layers, layer_norm)
