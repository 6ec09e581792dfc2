"""Gemma: Llama's pre-norm block with Gemma's ``1 + w`` RMS norms, scaled embeddings, GeGLU feed-forward."""

import keras

from presetforge.backbones.decoder import DecoderBackbone, DecoderBlock
from presetforge.backbones.layers import ReversibleEmbedding
from presetforge.backbones.llama import DEFAULT_ROPE
from presetforge.backbones.norms import RMSNormalization
from presetforge.backbones.rotary import RotaryEmbedding


@keras.saving.register_keras_serializable(package="presetforge")
class GemmaBackbone(DecoderBackbone):
    """Gemma decoder; inputs ``token_ids`` and ``padding_mask``, output the final hidden states.

    Arguments follow keras-hub's ``GemmaBackbone`` (``num_query_heads``,
    ``num_key_value_heads``, ``head_dim`` …), except that ``intermediate_dim`` is
    the width of each gated projection (the upstream ``intermediate_size``, half of
    keras-hub's number). Besides: ``rope`` (the canonical rope parameters),
    ``activation`` (tanh GELU in every released Gemma), ``attention_bias``,
    ``tie_word_embeddings``. Token embeddings are scaled by ``sqrt(hidden_dim)``
    in the compute dtype; the ``embeddings`` stage is after that scaling.
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
        rope=None,
        layer_norm_epsilon=1e-6,
        activation="gelu_approximate",
        attention_bias=False,
        tie_word_embeddings=True,
        max_sequence_length=8192,
        dropout=0.0,
        dtype=None,
        **kwargs,
    ):
        policy = self._policy(dtype)
        num_key_value_heads = num_key_value_heads or num_query_heads
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
            query_key_value_bias=attention_bias,
            output_bias=attention_bias,
        )
        feedforward = dict(hidden_dim=hidden_dim, intermediate_dim=intermediate_dim, activation=activation)
        blocks = [
            DecoderBlock(
                attention, feedforward, layer_norm_epsilon, dropout, norm_unit_offset=True,
                name=f"transformer_layer_{i}", dtype=policy,
            )
            for i in range(num_layers)
        ]
        layer_norm = RMSNormalization(layer_norm_epsilon, unit_offset=True, name="layer_norm", dtype=policy)
        self._build(
            locals(), token_embedding, blocks, [rotary] * num_layers, layer_norm, embedding_scale=hidden_dim**0.5
        )
