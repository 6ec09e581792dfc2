"""What decoder families share: the pre-norm block and the functional graph around the blocks.

A family file composes these with its own options (and, where its block is
shaped differently, its own block class); per-layer differences come in as
per-layer arguments (``layer_types`` in the upstream config), never as a
pattern written into code.
"""

import keras
from keras import ops

from presetforge.backbones.attention import GroupedQueryAttention
from presetforge.backbones.backbone import Backbone
from presetforge.backbones.feedforward import GatedFeedforward
from presetforge.backbones.norms import RMSNormalization


class PositionIds(keras.layers.Layer):
    """``[batch, seq]`` positions ``0 .. seq - 1`` for the token ids given (right padding keeps them exact)."""

    def call(self, token_ids):
        shape = ops.shape(token_ids)
        return ops.broadcast_to(ops.arange(shape[1], dtype="int32")[None, :], (shape[0], shape[1]))

    def compute_output_spec(self, token_ids):
        return keras.KerasTensor(token_ids.shape, dtype="int32")


class EmbeddingScale(keras.layers.Layer):
    """Multiplies by a constant cast to the compute dtype first, as Gemma scales its embeddings.

    A layer rather than ``x * scale`` in the graph: Keras marks the product of a
    symbolic tensor and a constant sparse, and a sparse tensor cannot start a
    stage's own model (``Backbone.stage_models``) on the torch backend.
    """

    def __init__(self, scale, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, x):
        return x * ops.cast(self.scale, x.dtype)

    def compute_output_spec(self, x):
        return keras.KerasTensor(x.shape, dtype=x.dtype)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


class DecoderBlock(keras.layers.Layer):
    """``x + attention(norm(x))``, then ``x + feedforward(norm(x))``: Llama's block, and Mistral's, Qwen's, Phi-3's.

    ``attention`` and ``feedforward`` are the keyword arguments of
    ``GroupedQueryAttention`` and ``GatedFeedforward``; both norms are RMS norms,
    in Gemma's ``1 + w`` form with ``norm_unit_offset``.
    """

    def __init__(
        self, attention, feedforward, layer_norm_epsilon=1e-6, dropout=0.0, norm_unit_offset=False, **kwargs
    ):
        super().__init__(**kwargs)
        self.config_args = dict(
            attention=attention, feedforward=feedforward, layer_norm_epsilon=layer_norm_epsilon, dropout=dropout,
            norm_unit_offset=norm_unit_offset,
        )
        policy = self.dtype_policy
        norm = lambda name: RMSNormalization(layer_norm_epsilon, norm_unit_offset, name=name, dtype=policy)
        self.self_attention_layer_norm = norm("self_attention_layer_norm")
        self.self_attention = GroupedQueryAttention(**attention, dropout=dropout, name="self_attention", dtype=policy)
        self.feedforward_layer_norm = norm("feedforward_layer_norm")
        self.feedforward = GatedFeedforward(**feedforward, name="feedforward", dtype=policy)
        self.dropout = keras.layers.Dropout(dropout, dtype=policy)

    def build(self, input_shape):
        for layer in (self.self_attention_layer_norm, self.self_attention, self.feedforward_layer_norm, self.feedforward):
            layer.build(input_shape)

    def call(self, x, padding_mask, cos, sin, training=None):
        attended = self.self_attention(self.self_attention_layer_norm(x), padding_mask, cos, sin, training=training)
        x = x + self.dropout(attended, training=training)
        return x + self.dropout(self.feedforward(self.feedforward_layer_norm(x)), training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), **self.config_args}


def decoder_graph(token_embedding, blocks, rotary_tables, layer_norm, embedding_scale=None):
    """The functional graph of a decoder: ``(inputs, output, stages)`` for ``Backbone.__init__``.

    ``rotary_tables`` is one ``RotaryEmbedding`` per block (blocks of one kind
    share theirs, and each is computed once); ``embedding_scale`` multiplies the
    token embeddings (Gemma's ``sqrt(hidden_dim)``, in the compute dtype).
    Stages: ``embeddings``, ``layer_0`` … ``layer_{n-1}``, ``final``.
    """
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
    x = token_embedding(token_ids)
    if embedding_scale is not None:
        x = EmbeddingScale(embedding_scale, name="embedding_scale", dtype=token_embedding.dtype_policy)(x)
    positions = PositionIds(name="position_ids")(token_ids)
    tables = {}
    stages = {"embeddings": x}
    for i, (block, rotary) in enumerate(zip(blocks, rotary_tables, strict=True)):
        if rotary.name not in tables:
            tables[rotary.name] = rotary(positions)
        cos, sin = tables[rotary.name]
        x = block(x, padding_mask=padding_mask, cos=cos, sin=sin)
        stages[f"layer_{i}"] = x
    x = layer_norm(x)
    stages["final"] = x
    return {"token_ids": token_ids, "padding_mask": padding_mask}, x, stages


class DecoderBackbone(Backbone):
    """Base of the decoder families: the graph around their layers (``decoder_graph``), logits
    through the token embedding, and the constructor arguments ``get_config`` returns."""

    language_model = True

    def _build(self, arguments, token_embedding, blocks, rotary_tables, layer_norm, embedding_scale=None):
        """Finish a family's ``__init__``, given its ``locals()`` as ``arguments`` and its layers."""
        inputs, output, stages = decoder_graph(token_embedding, blocks, rotary_tables, layer_norm, embedding_scale)
        Backbone.__init__(self, inputs=inputs, outputs=output, dtype=arguments["dtype"], **arguments["kwargs"])
        self._record_hidden_states(stages)
        self.token_embedding = token_embedding
        self.transformer_layers = blocks
        self.layer_norm = layer_norm
        self._remember_arguments(arguments)
