"""Gemma 2: Gemma with a norm after each sublayer too, sliding-window layers as ``layer_types`` says,
its own query scale, and soft-capped attention scores and logits."""

import keras

from presetforge.backbones.attention import GroupedQueryAttention
from presetforge.backbones.decoder import DecoderBackbone
from presetforge.backbones.feedforward import GatedFeedforward
from presetforge.backbones.llama import DEFAULT_ROPE
from presetforge.backbones.layers import ReversibleEmbedding
from presetforge.backbones.norms import RMSNormalization
from presetforge.backbones.rotary import RotaryEmbedding

LAYER_TYPES = ("full_attention", "sliding_attention")


def sliding_windows(layer_types, num_layers, sliding_window_size):
    """Each layer's attention window: ``sliding_window_size`` for ``sliding_attention`` layers, else ``None``."""
    if len(layer_types) != num_layers:
        raise ValueError(f"{len(layer_types)} layer types for {num_layers} layers")
    unknown = sorted(set(layer_types) - set(LAYER_TYPES))
    if unknown:
        raise ValueError(f"unknown layer type {unknown[0]!r}; expected one of {', '.join(LAYER_TYPES)}")
    if "sliding_attention" in layer_types and not sliding_window_size:
        raise ValueError("sliding_attention layers need a sliding_window_size")
    return [sliding_window_size if t == "sliding_attention" else None for t in layer_types]


class Gemma2DecoderBlock(keras.layers.Layer):
    """``x + norm(attention(norm(x)))``, then ``x + norm(feedforward(norm(x)))``: Gemma 2's and 3's block.

    Each sublayer's output is RMS-normalised again before its residual add
    (``post_attention_layer_norm``, ``post_feedforward_layer_norm``); all four
    norms are Gemma's ``1 + w`` form. ``attention`` and ``feedforward`` are the
    keyword arguments of ``GroupedQueryAttention`` and ``GatedFeedforward``.
    """

    def __init__(self, attention, feedforward, layer_norm_epsilon=1e-6, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.config_args = dict(
            attention=attention, feedforward=feedforward, layer_norm_epsilon=layer_norm_epsilon, dropout=dropout
        )
        policy = self.dtype_policy
        norm = lambda name: RMSNormalization(layer_norm_epsilon, unit_offset=True, name=name, dtype=policy)
        self.self_attention_layer_norm = norm("self_attention_layer_norm")
        self.self_attention = GroupedQueryAttention(**attention, dropout=dropout, name="self_attention", dtype=policy)
        self.post_attention_layer_norm = norm("post_attention_layer_norm")
        self.feedforward_layer_norm = norm("feedforward_layer_norm")
        self.feedforward = GatedFeedforward(**feedforward, name="feedforward", dtype=policy)
        self.post_feedforward_layer_norm = norm("post_feedforward_layer_norm")
        self.dropout = keras.layers.Dropout(dropout, dtype=policy)

    def build(self, input_shape):
        for layer in (
            self.self_attention_layer_norm, self.self_attention, self.post_attention_layer_norm,
            self.feedforward_layer_norm, self.feedforward, self.post_feedforward_layer_norm,
        ):
            layer.build(input_shape)

    def call(self, x, padding_mask, cos, sin, training=None):
        attended = self.self_attention(self.self_attention_layer_norm(x), padding_mask, cos, sin, training=training)
        x = x + self.dropout(self.post_attention_layer_norm(attended), training=training)
        fed = self.feedforward(self.feedforward_layer_norm(x))
        return x + self.dropout(self.post_feedforward_layer_norm(fed), training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), **self.config_args}


@keras.saving.register_keras_serializable(package="presetforge")
class Gemma2Backbone(DecoderBackbone):
    """Gemma 2 decoder; inputs ``token_ids`` and ``padding_mask``, output the final hidden states.

    Arguments as ``GemmaBackbone``'s, and: ``layer_types`` (one of
    ``full_attention``, ``sliding_attention`` per layer; all full when omitted),
    ``sliding_window_size``, ``query_pre_attn_scalar`` (scores are scaled by its
    ``-1/2`` power; ``head_dim`` when omitted), ``attention_logit_soft_cap`` and
    ``final_logit_soft_cap`` (keras-hub's names; ``None`` for none). The final
    soft-cap is part of ``backbone.logits()``.
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
        attention_logit_soft_cap=None,
        final_logit_soft_cap=None,
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
        layer_types = list(layer_types or ["full_attention"] * num_layers)
        query_pre_attn_scalar = query_pre_attn_scalar or head_dim
        rope = rope or DEFAULT_ROPE
        token_embedding = ReversibleEmbedding(
            vocabulary_size, hidden_dim, tie_weights=tie_word_embeddings, logit_soft_cap=final_logit_soft_cap,
            name="token_embedding", dtype=policy,
        )
        rotary = RotaryEmbedding(head_dim, rope, name="rotary_embedding", dtype=policy)
        attention = dict(
            num_query_heads=num_query_heads,
            num_key_value_heads=num_key_value_heads,
            head_dim=head_dim,
            hidden_dim=hidden_dim,
            query_key_value_bias=attention_bias,
            output_bias=attention_bias,
            query_scale=query_pre_attn_scalar**-0.5,
            logit_soft_cap=attention_logit_soft_cap,
        )
        feedforward = dict(hidden_dim=hidden_dim, intermediate_dim=intermediate_dim, activation=activation)
        blocks = [
            Gemma2DecoderBlock(
                {**attention, "sliding_window": window}, feedforward, layer_norm_epsilon, dropout,
                name=f"transformer_layer_{i}", dtype=policy,
            )
            for i, window in enumerate(sliding_windows(layer_types, num_layers, sliding_window_size))
        ]
        layer_norm = RMSNormalization(layer_norm_epsilon, unit_offset=True, name="layer_norm", dtype=policy)
        self._build(
            locals(), token_embedding, blocks, [rotary] * num_layers, layer_norm, embedding_scale=hidden_dim**0.5
        )
