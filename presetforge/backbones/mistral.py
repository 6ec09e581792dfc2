"""Mistral: Llama's decoder with every layer attending within one sliding window."""

import keras

from presetforge.backbones.decoder import DecoderBackbone, DecoderBlock
from presetforge.backbones.layers import ReversibleEmbedding
from presetforge.backbones.llama import DEFAULT_ROPE
from presetforge.backbones.norms import RMSNormalization
from presetforge.backbones.rotary import RotaryEmbedding


@keras.saving.register_keras_serializable(package="presetforge")
class MistralBackbone(DecoderBackbone):
    """Mistral decoder; inputs ``token_ids`` and ``padding_mask``, output the final hidden states.

    Arguments follow keras-hub's ``MistralBackbone`` (``num_query_heads``,
    ``num_key_value_heads``, ``sliding_window`` …) with what its upstream config
    can set besides: an explicit ``head_dim``, ``rope`` (the canonical rope
    parameters, any rope type), ``activation``, ``tie_word_embeddings``.
    ``sliding_window=None`` attends to every earlier position, as upstream's
    ``sliding_window: null`` does. Logits: ``backbone.logits(hidden)``.
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
        sliding_window=None,
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
