"""RoBERTa: BERT's post-norm encoder with positions counted past the padding id."""

import keras
from keras import ops

from presetforge.backbones.backbone import Backbone
from presetforge.backbones.encoder import encoder_graph, encoder_layers


def padding_offset_positions(token_ids, pad_token_id):
    """Each token's position row, as fairseq and transformers number them: real tokens count
    ``pad_token_id + 1, pad_token_id + 2 …`` in order, and every token whose id is the padding
    id (wherever it stands) takes row ``pad_token_id`` and is not counted."""
    real = ops.cast(ops.not_equal(token_ids, pad_token_id), "int32")
    return ops.cumsum(real, axis=1) * real + pad_token_id


@keras.saving.register_keras_serializable(package="presetforge")
class RobertaBackbone(Backbone):
    """RoBERTa encoder; inputs ``token_ids`` and ``padding_mask``; output the sequence output,
    or with ``add_pooling_layer`` ``sequence_output`` and ``pooled_output``.

    Arguments follow keras-hub's ``RobertaBackbone``, with what the upstream
    config and checkpoint can set besides: ``pad_token_id`` (positions are
    counted past it, so the position table has ``max_sequence_length +
    pad_token_id + 1`` rows), ``num_segments`` (the token-type table; every
    token adds row 0, as transformers does when no token types are given),
    ``layer_norm_epsilon``, ``activation`` and the tanh pooler on the first
    token, which only some checkpoints carry.
    """

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        hidden_dim,
        intermediate_dim,
        dropout=0.1,
        max_sequence_length=512,
        pad_token_id=1,
        num_segments=1,
        layer_norm_epsilon=1e-5,
        activation="gelu",
        add_pooling_layer=False,
        dtype=None,
        **kwargs,
    ):
        policy = self._policy(dtype)
        embedding = lambda rows, name: keras.layers.Embedding(rows, hidden_dim, name=name, dtype=policy)  # noqa: E731
        token_embedding = embedding(vocabulary_size, "token_embedding")
        position_embedding = embedding(max_sequence_length + pad_token_id + 1, "position_embedding")
        segment_embedding = embedding(num_segments, "segment_embedding")
        layers = encoder_layers(
            num_layers, num_heads, hidden_dim, intermediate_dim, activation, layer_norm_epsilon, dropout,
            pooler=add_pooling_layer, dtype=policy,
        )

        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        x = token_embedding(token_ids) + segment_embedding(ops.zeros_like(token_ids))
        x = x + position_embedding(padding_offset_positions(token_ids, pad_token_id))
        outputs, stages = encoder_graph(x, padding_mask, layers)
        super().__init__(
            inputs={"token_ids": token_ids, "padding_mask": padding_mask}, outputs=outputs, dtype=dtype, **kwargs
        )
        self._record_hidden_states(stages)
        self.token_embedding = token_embedding
        self.position_embedding = position_embedding
        self.segment_embedding = segment_embedding
        for name, layer in layers.items():
            setattr(self, name, layer)

        self._remember_arguments(locals())
