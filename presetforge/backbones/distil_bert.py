"""DistilBERT: BERT's post-norm encoder without token types or a pooler."""

import keras

from presetforge.backbones.backbone import Backbone
from presetforge.backbones.encoder import encoder_graph, encoder_layers
from presetforge.backbones.layers import PositionEmbedding

# transformers fixes every DistilBERT layer norm's epsilon; no config key sets it.
LAYER_NORM_EPSILON = 1e-12


@keras.saving.register_keras_serializable(package="presetforge")
class DistilBertBackbone(Backbone):
    """DistilBERT encoder; inputs ``token_ids`` and ``padding_mask``, output the sequence output.

    Arguments follow keras-hub's ``DistilBertBackbone``; ``activation`` (the
    upstream config's, exact ``gelu`` by default) is added.
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
        activation="gelu",
        dtype=None,
        **kwargs,
    ):
        policy = self._policy(dtype)
        token_embedding = keras.layers.Embedding(vocabulary_size, hidden_dim, name="token_embedding", dtype=policy)
        position_embedding = PositionEmbedding(max_sequence_length, name="position_embedding", dtype=policy)
        layers = encoder_layers(
            num_layers, num_heads, hidden_dim, intermediate_dim, activation, LAYER_NORM_EPSILON, dropout,
            pooler=False, dtype=policy,
        )

        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        x = token_embedding(token_ids)
        output, stages = encoder_graph(x + position_embedding(x), padding_mask, layers)
        super().__init__(
            inputs={"token_ids": token_ids, "padding_mask": padding_mask}, outputs=output, dtype=dtype, **kwargs
        )
        self._record_hidden_states(stages)
        self.token_embedding = token_embedding
        self.position_embedding = position_embedding
        for name, layer in layers.items():
            setattr(self, name, layer)

        self._remember_arguments(locals())
