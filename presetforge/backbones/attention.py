"""Causal self-attention for decoder families: grouped key/value heads and rotary positions, with
each family's options as arguments rather than subclasses.

The order of operations follows the reference implementations, since in
half precision the order decides the rounding: project, split into heads,
normalise queries and keys per head (when the family does), rotate, scale the
scores, soft-cap them, mask, soft-max in float32, cast back, weigh the values.
"""

import keras
import ml_dtypes
import numpy as np
from keras import ops

from presetforge.backbones.norms import RMSNormalization
from presetforge.backbones.rotary import apply_rotary


def attention_mask(padding_mask, query_length, sliding_window=None):
    """``[batch, 1, query, key]`` booleans: causal, real keys only, and within ``sliding_window``
    (a query at ``i`` sees keys ``j`` with ``i - window < j <= i``) when one is given."""
    positions = ops.arange(query_length)
    allowed = positions[None, :] <= positions[:, None]
    if sliding_window is not None:
        allowed = ops.logical_and(allowed, positions[None, :] > positions[:, None] - sliding_window)
    return ops.logical_and(allowed[None, None], ops.cast(padding_mask, "bool")[:, None, None, :])


def _lowest(dtype):
    """The most negative finite value of ``dtype``: what masked scores become before the soft-max."""
    dtype = keras.backend.standardize_dtype(dtype)
    return float(ml_dtypes.finfo(ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)).min)


class GroupedQueryAttention(keras.layers.Layer):
    """Self-attention with ``num_query_heads`` query heads sharing ``num_key_value_heads`` key/value heads.

    Arguments beyond the head counts and sizes:
        query_key_value_bias, output_bias: biases of the q/k/v and the output projections.
        query_scale: what scores are multiplied by (default ``head_dim ** -0.5``).
        query_key_norm_epsilon: when set, queries and keys are RMS-normalised per head
            before rotation (``query_norm``, ``key_norm``); ``norm_unit_offset`` picks
            Gemma's ``1 + w`` form.
        sliding_window: attend to at most this many most recent positions.
        logit_soft_cap: scores become ``cap * tanh(scores / cap)`` before masking.

    Sublayers ``query``, ``key``, ``value``, ``attention_output`` are Dense
    layers with flat kernels (``[hidden, heads * head_dim]``), the names
    converters and LoRA key on. ``call(x, padding_mask, cos, sin)`` takes the
    rotary tables of ``RotaryEmbedding``.
    """

    def __init__(
        self,
        num_query_heads,
        num_key_value_heads,
        head_dim,
        hidden_dim,
        query_key_value_bias=False,
        output_bias=False,
        query_scale=None,
        query_key_norm_epsilon=None,
        norm_unit_offset=False,
        sliding_window=None,
        logit_soft_cap=None,
        dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_query_heads % num_key_value_heads:
            raise ValueError(f"{num_query_heads} query heads cannot share {num_key_value_heads} key/value heads evenly")
        self.config_args = dict(
            num_query_heads=num_query_heads,
            num_key_value_heads=num_key_value_heads,
            head_dim=head_dim,
            hidden_dim=hidden_dim,
            query_key_value_bias=query_key_value_bias,
            output_bias=output_bias,
            query_scale=query_scale,
            query_key_norm_epsilon=query_key_norm_epsilon,
            norm_unit_offset=norm_unit_offset,
            sliding_window=sliding_window,
            logit_soft_cap=logit_soft_cap,
            dropout=dropout,
        )
        self.num_query_heads, self.num_key_value_heads, self.head_dim = num_query_heads, num_key_value_heads, head_dim
        self.scale = head_dim**-0.5 if query_scale is None else query_scale
        self.sliding_window = sliding_window
        self.logit_soft_cap = logit_soft_cap
        policy = self.dtype_policy
        dense = lambda units, bias, name: keras.layers.Dense(units, use_bias=bias, name=name, dtype=policy)
        self.query = dense(num_query_heads * head_dim, query_key_value_bias, "query")
        self.key = dense(num_key_value_heads * head_dim, query_key_value_bias, "key")
        self.value = dense(num_key_value_heads * head_dim, query_key_value_bias, "value")
        self.attention_output = dense(hidden_dim, output_bias, "attention_output")
        self.query_norm = self.key_norm = None
        if query_key_norm_epsilon is not None:
            norm = lambda name: RMSNormalization(query_key_norm_epsilon, norm_unit_offset, name=name, dtype=policy)
            self.query_norm, self.key_norm = norm("query_norm"), norm("key_norm")
        self.dropout = keras.layers.Dropout(dropout, dtype=policy)

    def build(self, input_shape):
        for layer in (self.query, self.key, self.value):
            layer.build(input_shape)
        self.attention_output.build(input_shape[:-1] + (self.num_query_heads * self.head_dim,))
        for norm in (self.query_norm, self.key_norm):
            if norm is not None:
                norm.build((None, None, None, self.head_dim))

    def _heads(self, x, heads):
        batch, seq = ops.shape(x)[0], ops.shape(x)[1]
        return ops.transpose(ops.reshape(x, (batch, seq, heads, self.head_dim)), (0, 2, 1, 3))

    def call(self, x, padding_mask, cos, sin, training=None):
        q = self._heads(self.query(x), self.num_query_heads)
        k = self._heads(self.key(x), self.num_key_value_heads)
        v = self._heads(self.value(x), self.num_key_value_heads)
        if self.query_norm is not None:
            q, k = self.query_norm(q), self.key_norm(k)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        groups = self.num_query_heads // self.num_key_value_heads
        if groups > 1:
            k, v = ops.repeat(k, groups, axis=1), ops.repeat(v, groups, axis=1)
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * ops.cast(self.scale, q.dtype)
        if self.logit_soft_cap is not None:
            scores = ops.tanh(scores / self.logit_soft_cap) * self.logit_soft_cap
        mask = attention_mask(padding_mask, ops.shape(x)[1], self.sliding_window)
        scores = ops.where(mask, scores, ops.cast(_lowest(scores.dtype), scores.dtype))
        probs = ops.cast(ops.softmax(ops.cast(scores, "float32"), axis=-1), v.dtype)
        context = ops.transpose(ops.matmul(self.dropout(probs, training=training), v), (0, 2, 1, 3))
        batch, seq = ops.shape(x)[0], ops.shape(x)[1]
        return self.attention_output(ops.reshape(context, (batch, seq, self.num_query_heads * self.head_dim)))

    def compute_output_shape(self, input_shape):
        return input_shape[:-1] + (self.config_args["hidden_dim"],)

    def get_config(self):
        return {**super().get_config(), **self.config_args}
