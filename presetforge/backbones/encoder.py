"""The post-norm encoder BERT, DistilBERT and RoBERTa share, written once.

Each family sums its own embeddings (token, positions by its own rule, token
types or none); from there all three normalise the sum, run post-norm
``TransformerBlock``s over it and, where the family has one, pool the first
token through a tanh ``Dense``. Layer names are fixed here, so weight paths
(``embeddings_layer_norm/gamma``, ``transformer_layer_0/…``, ``pooled_dense/…``)
are the same in every family.
"""

import keras

from presetforge.backbones.layers import transformer_stack


def encoder_layers(
    num_layers,
    num_heads,
    hidden_dim,
    intermediate_dim,
    activation,
    layer_norm_epsilon,
    dropout,
    pooler,
    dtype,
):
    """The layers after the embeddings' sum, by the attribute name a backbone keeps them under;
    ``pooled_dense`` is ``None`` without a ``pooler``."""
    return {
        "embeddings_layer_norm": keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, name="embeddings_layer_norm", dtype=dtype
        ),
        "embeddings_dropout": keras.layers.Dropout(dropout, name="embeddings_dropout", dtype=dtype),
        "transformer_layers": transformer_stack(
            num_layers,
            num_heads=num_heads,
            hidden_dim=hidden_dim,
            intermediate_dim=intermediate_dim,
            activation=activation,
            layer_norm_epsilon=layer_norm_epsilon,
            dropout=dropout,
            norm_first=False,
            causal=False,
            dtype=dtype,
        ),
        "pooled_dense": (
            keras.layers.Dense(hidden_dim, activation="tanh", name="pooled_dense", dtype=dtype) if pooler else None
        ),
    }


def encoder_graph(embedded, padding_mask, layers):
    """Wire ``encoder_layers`` onto the summed embeddings: ``(outputs, stages)``.

    ``outputs`` is the sequence output, or with a pooler ``{"sequence_output",
    "pooled_output"}`` (keras-hub's two conventions); ``stages`` names each
    stage's output for parity: ``embeddings``, ``layer_{i}``, ``pooled_output``.
    """
    x = layers["embeddings_dropout"](layers["embeddings_layer_norm"](embedded))
    stages = {"embeddings": x}
    for i, block in enumerate(layers["transformer_layers"]):
        x = block(x, padding_mask=padding_mask)
        stages[f"layer_{i}"] = x
    if layers["pooled_dense"] is None:
        return x, stages
    pooled = layers["pooled_dense"](x[:, 0, :])
    stages["pooled_output"] = pooled
    return {"sequence_output": x, "pooled_output": pooled}, stages
