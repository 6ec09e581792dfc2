"""BERT: token, position and segment embeddings, post-norm blocks, a tanh pooler on [CLS]."""

import keras

from presetforge.backbones.backbone import Backbone
from presetforge.backbones.encoder import encoder_graph, encoder_layers
from presetforge.backbones.layers import PositionEmbedding


@keras.saving.register_keras_serializable(package="presetforge")
class BertBackbone(Backbone):
    """BERT encoder; inputs ``token_ids``, ``segment_ids``, ``padding_mask``; outputs
    ``sequence_output`` and ``pooled_output``.

    Arguments follow keras-hub's ``BertBackbone``; ``layer_norm_epsilon`` and
    ``activation`` (exact ``gelu`` by default, as BERT was trained) are added.
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
        num_segments=2,
        layer_norm_epsilon=1e-12,
        activation="gelu",
        dtype=None,
        **kwargs,
    ):
        policy = self._policy(dtype)
        token_embedding = keras.layers.Embedding(vocabulary_size, hidden_dim, name="token_embedding", dtype=policy)
        position_embedding = PositionEmbedding(max_sequence_length, name="position_embedding", dtype=policy)
        segment_embedding = keras.layers.Embedding(num_segments, hidden_dim, name="segment_embedding", dtype=policy)
        layers = encoder_layers(
            num_layers, num_heads, hidden_dim, intermediate_dim, activation, layer_norm_epsilon, dropout,
            pooler=True, dtype=policy,
        )

        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        x = token_embedding(token_ids)
        x = x + position_embedding(x) + segment_embedding(segment_ids)
        outputs, stages = encoder_graph(x, padding_mask, layers)
        super().__init__(
            inputs={"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask},
            outputs=outputs,
            dtype=dtype,
            **kwargs,
        )
        self._record_hidden_states(stages)
        self.token_embedding = token_embedding
        self.position_embedding = position_embedding
        self.segment_embedding = segment_embedding
        for name, layer in layers.items():
            setattr(self, name, layer)

        self._remember_arguments(locals())
