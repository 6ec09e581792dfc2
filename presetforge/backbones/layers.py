"""Transformer building blocks shared by every backbone, written with ``keras.ops`` only.

Sublayers carry fixed names (``query``, ``value``, ``feedforward_output`` …) so
weight paths are stable across instances: LoRA files and converters key on them.
"""

import keras
from keras import ops

ACTIVATIONS = ("gelu", "gelu_approximate", "relu", "silu")


def get_activation(name):
    """The callable for one of ``ACTIVATIONS``; exact and tanh GELU are kept apart on purpose."""
    if name == "gelu":
        return lambda x: keras.activations.gelu(x, approximate=False)
    if name == "gelu_approximate":
        return lambda x: keras.activations.gelu(x, approximate=True)
    if name in ("relu", "silu"):
        return keras.activations.get(name)
    raise ValueError(f"unknown activation '{name}'; expected one of {', '.join(ACTIVATIONS)}")


class ReversibleEmbedding(keras.layers.Embedding):
    """A token embedding that also maps hidden states back to vocabulary logits.

    ``layer(token_ids)`` embeds; ``layer(hidden, reverse=True)`` gives logits,
    through the embedding matrix itself (``tie_weights=True``, GPT-2's tied
    head) or through its own ``reverse_embeddings`` of shape
    ``[hidden, vocabulary]`` (an untied LM head), so a language model's output
    layer lives in the same layer as its input embedding, as in keras-hub.
    ``logit_soft_cap`` bounds the logits to ``cap * tanh(logits / cap)`` (Gemma 2's
    final soft-capping), so they are the model's logits, not the head's raw output.
    """

    def __init__(self, input_dim, output_dim, tie_weights=True, logit_soft_cap=None, **kwargs):
        super().__init__(input_dim, output_dim, **kwargs)
        self.tie_weights = tie_weights
        self.logit_soft_cap = logit_soft_cap

    def build(self, input_shape=None):
        if self.built:
            return
        super().build(input_shape)
        if not self.tie_weights:
            self.reverse_embeddings = self.add_weight(
                shape=(self.output_dim, self.input_dim),
                initializer=self.embeddings_initializer,
                name="reverse_embeddings",
            )

    @property
    def variable_serialization_spec(self):
        # Keras saves an Embedding's variables by this spec; the untied head is one more.
        spec = dict(super().variable_serialization_spec)
        if not self.tie_weights:
            spec[None] = [*spec[None], "reverse_embeddings"]
        return spec

    @property
    def head_weights(self):
        """The variables the reverse direction (the LM head) reads: the embeddings when tied."""
        return [self.embeddings if self.tie_weights else self.reverse_embeddings]

    def call(self, inputs, reverse=False):
        if not reverse:
            return super().call(inputs)
        kernel = ops.transpose(self.embeddings) if self.tie_weights else self.reverse_embeddings
        logits = ops.matmul(inputs, ops.cast(kernel, inputs.dtype))
        if self.logit_soft_cap is None:
            return logits
        return ops.tanh(logits / self.logit_soft_cap) * self.logit_soft_cap

    def compute_output_shape(self, input_shape, reverse=False):
        if reverse:
            return (*input_shape[:-1], self.input_dim)
        return super().compute_output_shape(input_shape)

    def compute_output_spec(self, inputs, reverse=False):
        if reverse:
            return keras.KerasTensor(self.compute_output_shape(inputs.shape, reverse=True), dtype=self.compute_dtype)
        return super().compute_output_spec(inputs)

    def get_config(self):
        return {**super().get_config(), "tie_weights": self.tie_weights, "logit_soft_cap": self.logit_soft_cap}


class PositionEmbedding(keras.layers.Layer):
    """Learned absolute position embeddings, added for positions ``0 .. seq_len - 1``."""

    def __init__(self, max_sequence_length, **kwargs):
        super().__init__(**kwargs)
        self.max_sequence_length = max_sequence_length

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            shape=(self.max_sequence_length, input_shape[-1]),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="embeddings",
        )

    def call(self, x):
        seq_len = ops.shape(x)[1]
        positions = ops.convert_to_tensor(self.embeddings)[:seq_len]
        return ops.cast(positions, x.dtype)[None, :, :]

    def compute_output_shape(self, input_shape):
        return (1, input_shape[1], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "max_sequence_length": self.max_sequence_length}


class SelfAttention(keras.layers.Layer):
    """Multi-head self-attention with separate ``query``/``key``/``value`` projections.

    Scores are masked and soft-maxed in float32 whatever the compute dtype, so
    bfloat16 presets stay close to the float32 reference.
    """

    def __init__(self, num_heads, hidden_dim, dropout=0.0, causal=False, **kwargs):
        super().__init__(**kwargs)
        if hidden_dim % num_heads:
            raise ValueError(f"hidden_dim {hidden_dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.head_dim = hidden_dim // num_heads
        self.causal = causal
        dense = lambda name: keras.layers.Dense(hidden_dim, name=name, dtype=self.dtype_policy)
        self.query = dense("query")
        self.key = dense("key")
        self.value = dense("value")
        self.attention_output = dense("attention_output")
        self.dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)

    def build(self, input_shape):
        for layer in (self.query, self.key, self.value):
            layer.build(input_shape)
        self.attention_output.build(input_shape[:-1] + (self.hidden_dim,))

    def _heads(self, x):
        batch, seq = ops.shape(x)[0], ops.shape(x)[1]
        return ops.transpose(ops.reshape(x, (batch, seq, self.num_heads, self.head_dim)), (0, 2, 1, 3))

    def call(self, x, padding_mask, training=None):
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))
        scores = ops.cast(scores, "float32") / float(self.head_dim) ** 0.5
        mask = ops.cast(padding_mask, "bool")[:, None, None, :]
        if self.causal:
            seq = ops.shape(x)[1]
            mask = ops.logical_and(mask, ops.tril(ops.ones((seq, seq), dtype="bool"))[None, None])
        scores = ops.where(mask, scores, ops.full_like(scores, -3.4e38))
        probs = self.dropout(ops.cast(ops.softmax(scores, axis=-1), v.dtype), training=training)
        context = ops.transpose(ops.matmul(probs, v), (0, 2, 1, 3))
        batch, seq = ops.shape(x)[0], ops.shape(x)[1]
        return self.attention_output(ops.reshape(context, (batch, seq, self.hidden_dim)))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "hidden_dim": self.hidden_dim,
            "dropout": self.dropout.rate,
            "causal": self.causal,
        }


class TransformerBlock(keras.layers.Layer):
    """One encoder/decoder block: attention then feed-forward, pre- or post-norm.

    ``norm_first=True`` is GPT-2's layout (normalize, transform, add);
    ``False`` is BERT's (transform, add, normalize).
    """

    def __init__(
        self,
        num_heads,
        hidden_dim,
        intermediate_dim,
        activation="gelu",
        layer_norm_epsilon=1e-5,
        dropout=0.0,
        norm_first=True,
        causal=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.config_args = dict(
            num_heads=num_heads,
            hidden_dim=hidden_dim,
            intermediate_dim=intermediate_dim,
            activation=activation,
            layer_norm_epsilon=layer_norm_epsilon,
            dropout=dropout,
            norm_first=norm_first,
            causal=causal,
        )
        self.norm_first = norm_first
        self.activation_fn = get_activation(activation)
        policy = self.dtype_policy
        norm = lambda name: keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name=name, dtype=policy)
        self.self_attention = SelfAttention(num_heads, hidden_dim, dropout, causal, name="self_attention", dtype=policy)
        self.self_attention_layer_norm = norm("self_attention_layer_norm")
        self.feedforward_intermediate = keras.layers.Dense(intermediate_dim, name="feedforward_intermediate", dtype=policy)
        self.feedforward_output = keras.layers.Dense(hidden_dim, name="feedforward_output", dtype=policy)
        self.feedforward_layer_norm = norm("feedforward_layer_norm")
        self.dropout = keras.layers.Dropout(dropout, dtype=policy)

    def build(self, input_shape):
        self.self_attention.build(input_shape)
        self.self_attention_layer_norm.build(input_shape)
        self.feedforward_intermediate.build(input_shape)
        self.feedforward_output.build(input_shape[:-1] + (self.config_args["intermediate_dim"],))
        self.feedforward_layer_norm.build(input_shape)

    def _feedforward(self, x):
        return self.feedforward_output(self.activation_fn(self.feedforward_intermediate(x)))

    def call(self, x, padding_mask, training=None):
        attend = lambda h: self.dropout(self.self_attention(h, padding_mask, training=training), training=training)
        feed = lambda h: self.dropout(self._feedforward(h), training=training)
        if self.norm_first:
            x = x + attend(self.self_attention_layer_norm(x))
            return x + feed(self.feedforward_layer_norm(x))
        x = self.self_attention_layer_norm(x + attend(x))
        return self.feedforward_layer_norm(x + feed(x))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), **self.config_args}


def transformer_stack(num_layers, **block_arguments):
    """``num_layers`` blocks named ``transformer_layer_{i}``, the names weight paths rely on."""
    return [TransformerBlock(name=f"transformer_layer_{i}", **block_arguments) for i in range(num_layers)]
