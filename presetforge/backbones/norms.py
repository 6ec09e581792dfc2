"""RMS normalisation, in the two forms decoder families use.

Both normalise in float32 whatever the compute dtype. Llama's form scales
by ``w`` after casting back to the input dtype; Gemma's scales by ``1 + w``
in float32 and casts last (``unit_offset=True``), so its stored weights are
offsets from one. In float32 the two orders agree; in bfloat16 they round
differently, which is why each family names its own.
"""

import keras
from keras import ops


class RMSNormalization(keras.layers.Layer):
    """``x / rms(x) * scale`` over the last axis; ``scale`` is ``1 + w`` with ``unit_offset``."""

    def __init__(self, epsilon=1e-6, unit_offset=False, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon
        self.unit_offset = unit_offset

    def build(self, input_shape):
        initializer = "zeros" if self.unit_offset else "ones"
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer=initializer, name="scale")

    def call(self, x):
        dtype = x.dtype
        x = ops.cast(x, "float32")
        x = x * ops.rsqrt(ops.mean(ops.square(x), axis=-1, keepdims=True) + self.epsilon)
        if self.unit_offset:
            return ops.cast(x * (1.0 + ops.cast(self.scale, "float32")), dtype)
        return ops.cast(self.scale, dtype) * ops.cast(x, dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "unit_offset": self.unit_offset}
