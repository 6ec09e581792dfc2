"""GPT-2: token and learned position embeddings, pre-norm causal blocks, a final layer norm."""

import keras

from presetforge.backbones.backbone import Backbone
from presetforge.backbones.layers import PositionEmbedding, ReversibleEmbedding, transformer_stack


@keras.saving.register_keras_serializable(package="presetforge")
class GPT2Backbone(Backbone):
    """GPT-2 decoder; inputs ``token_ids`` and ``padding_mask``, output the final hidden states.

    Arguments follow keras-hub's ``GPT2Backbone``; ``layer_norm_epsilon`` and
    ``activation`` are added so every upstream numerics field can be honoured,
    and ``tie_word_embeddings=False`` gives the LM head its own weights
    (``token_embedding.reverse_embeddings``). Logits: ``backbone.logits(hidden)``.
    """

    language_model = True

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        hidden_dim,
        intermediate_dim,
        dropout=0.1,
        max_sequence_length=1024,
        layer_norm_epsilon=1e-5,
        activation="gelu_approximate",
        tie_word_embeddings=True,
        dtype=None,
        **kwargs,
    ):
        policy = self._policy(dtype)
        token_embedding = ReversibleEmbedding(
            vocabulary_size, hidden_dim, tie_weights=tie_word_embeddings, name="token_embedding", dtype=policy
        )
        position_embedding = PositionEmbedding(max_sequence_length, name="position_embedding", dtype=policy)
        embeddings_dropout = keras.layers.Dropout(dropout, name="embeddings_dropout", dtype=policy)
        transformer_layers = transformer_stack(
            num_layers,
            num_heads=num_heads,
            hidden_dim=hidden_dim,
            intermediate_dim=intermediate_dim,
            activation=activation,
            layer_norm_epsilon=layer_norm_epsilon,
            dropout=dropout,
            norm_first=True,
            causal=True,
            dtype=policy,
        )
        layer_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="layer_norm", dtype=policy)

        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        x = token_embedding(token_ids)
        x = embeddings_dropout(x + position_embedding(x))
        stages = {"embeddings": x}
        for i, block in enumerate(transformer_layers):
            x = block(x, padding_mask=padding_mask)
            stages[f"layer_{i}"] = x
        x = layer_norm(x)
        stages["final"] = x
        super().__init__(inputs={"token_ids": token_ids, "padding_mask": padding_mask}, outputs=x, dtype=dtype, **kwargs)
        self._record_hidden_states(stages)
        self.token_embedding = token_embedding
        self.position_embedding = position_embedding
        self.embeddings_dropout = embeddings_dropout
        self.transformer_layers = transformer_layers
        self.layer_norm = layer_norm

        self._remember_arguments(locals())
