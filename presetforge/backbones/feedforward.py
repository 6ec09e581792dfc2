"""The gated feed-forward network of decoder families: ``down(act(gate(x)) * up(x))``."""

import keras

from presetforge.backbones.layers import get_activation


class GatedFeedforward(keras.layers.Layer):
    """Gate and up projections to ``intermediate_dim``, the activated gate times up, projected down.

    Sublayers ``feedforward_gate``, ``feedforward_intermediate`` (up) and
    ``feedforward_output`` (down); ``use_bias`` gives all three biases.
    """

    def __init__(self, hidden_dim, intermediate_dim, activation="silu", use_bias=False, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.activation = activation
        self.use_bias = use_bias
        self.activation_fn = get_activation(activation)
        dense = lambda units, name: keras.layers.Dense(units, use_bias=use_bias, name=name, dtype=self.dtype_policy)
        self.feedforward_gate = dense(intermediate_dim, "feedforward_gate")
        self.feedforward_intermediate = dense(intermediate_dim, "feedforward_intermediate")
        self.feedforward_output = dense(hidden_dim, "feedforward_output")

    def build(self, input_shape):
        self.feedforward_gate.build(input_shape)
        self.feedforward_intermediate.build(input_shape)
        self.feedforward_output.build(input_shape[:-1] + (self.intermediate_dim,))

    def call(self, x):
        gated = self.activation_fn(self.feedforward_gate(x)) * self.feedforward_intermediate(x)
        return self.feedforward_output(gated)

    def compute_output_shape(self, input_shape):
        return input_shape[:-1] + (self.hidden_dim,)

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_dim": self.hidden_dim,
            "intermediate_dim": self.intermediate_dim,
            "activation": self.activation,
            "use_bias": self.use_bias,
        }
