"""Rotary position embeddings (RoPE) of every type the supported families use, in ``keras.ops``.

``RotaryEmbedding`` turns positions into the cos/sin tables a rope type
prescribes; ``apply_rotary`` rotates queries or keys with them. The rope is the
canonical dict of ``presetforge.converters.rope_config.rope_parameters`` (every
default already resolved), so this module only computes. The inverse
frequencies follow transformers' float32 arithmetic operation for operation:
on the torch backend the tables equal transformers' own bit for bit, and on
JAX they differ only by how its ``pow`` and ``cos`` round.
"""

import math

import keras
from keras import ops


class RotaryEmbedding(keras.layers.Layer):
    """cos/sin tables for integer ``positions`` ``[batch, seq]``, each ``[batch, seq, rotary_dim]`` float32.

    ``rotary_dim`` is ``int(head_dim * partial_rotary_factor)`` (all of ``head_dim``
    without a partial factor). Both tables repeat their ``rotary_dim / 2``
    frequencies twice (the rotate-half layout) and carry the rope type's
    attention scaling (yarn, longrope), as transformers returns them. No weights.

    Types that depend on the sequence read it from each call's longest
    position, ``L = max(positions) + 1``, and keep no state between calls:

    * ``longrope`` takes the short factors while ``L`` is at most the original
      context and the long ones beyond it, exactly as transformers does.
    * ``dynamic`` (NTK) stretches its base for ``max(L, max_position_embeddings)``.
      transformers instead caches the table of the longest call so far and keeps
      it for later shorter calls, until one falls below ``max_position_embeddings``.
      The two agree for any call below that length, and for any call at least as
      long as every call before it since the last one below it: a fresh module,
      one forward pass over a sequence, generation whose positions only grow.
    """

    def __init__(self, head_dim, rope, **kwargs):
        super().__init__(**kwargs)
        rope_type = rope["rope_type"]
        if rope_type not in _INVERSE_FREQUENCIES:
            raise ValueError(f"unknown rope type {rope_type!r}; expected one of {', '.join(_INVERSE_FREQUENCIES)}")
        self.head_dim = head_dim
        self.rope = dict(rope)
        self.rotary_dim = int(head_dim * rope.get("partial_rotary_factor", 1.0))
        if self.rotary_dim <= 0 or self.rotary_dim % 2:
            raise ValueError(f"rotary dimension {self.rotary_dim} (head_dim {head_dim}) is not a positive even number")
        self._inverse_frequencies = _INVERSE_FREQUENCIES[rope_type]

    def call(self, positions):
        inverse_frequencies = self._inverse_frequencies(self.rope, self.rotary_dim, positions)
        angles = ops.expand_dims(ops.cast(positions, "float32"), -1) * inverse_frequencies
        angles = ops.concatenate([angles, angles], axis=-1)
        scaling = self.rope.get("attention_factor", 1.0)
        return ops.cos(angles) * scaling, ops.sin(angles) * scaling

    def compute_output_spec(self, positions):
        shape = (*positions.shape, self.rotary_dim)
        return keras.KerasTensor(shape, dtype="float32"), keras.KerasTensor(shape, dtype="float32")

    def get_config(self):
        return {**super().get_config(), "head_dim": self.head_dim, "rope": self.rope}


def apply_rotary(x, cos, sin):
    """``x`` ``[batch, heads, seq, head_dim]`` rotated by the tables of ``RotaryEmbedding``.

    Only the first ``rotary_dim`` features rotate; the rest pass through. As in
    transformers, the float32 tables are cast to ``x``'s dtype before the
    product, so a bfloat16 ``x`` is rotated in bfloat16 with the same roundings.
    """
    rotary_dim = cos.shape[-1]
    dtype = keras.backend.standardize_dtype(x.dtype)
    cos = ops.expand_dims(ops.cast(cos, dtype), 1)
    sin = ops.expand_dims(ops.cast(sin, dtype), 1)
    if rotary_dim == x.shape[-1]:
        return x * cos + _rotate_half(x) * sin
    rotated, passed = x[..., :rotary_dim], x[..., rotary_dim:]
    return ops.concatenate([rotated * cos + _rotate_half(rotated) * sin, passed], axis=-1)


def _rotate_half(x):
    half = x.shape[-1] // 2
    return ops.concatenate([-x[..., half:], x[..., :half]], axis=-1)


# -- inverse frequencies per rope type: (rope, rotary_dim, positions) -> [rotary_dim / 2] float32 --


def _powers(theta, dim):
    """``theta ** (2i / dim)``, the wavelengths of the original RoPE over ``2 pi``."""
    return ops.power(theta, ops.arange(0, dim, 2, dtype="float32") / dim)


def _plain(theta, dim):
    """The original RoPE frequencies."""
    return 1.0 / _powers(theta, dim)


def _default(rope, dim, positions):
    return _plain(rope["rope_theta"], dim)


def _linear(rope, dim, positions):
    # Positions divided by the factor, folded into the frequencies.
    return _plain(rope["rope_theta"], dim) / rope["factor"]


def _dynamic(rope, dim, positions):
    factor, context = rope["factor"], rope["max_position_embeddings"]
    length = ops.cast(ops.maximum(ops.max(positions) + 1, context), "float32")
    theta = rope["rope_theta"] * ((factor * length / context) - (factor - 1)) ** (dim / (dim - 2))
    return _plain(theta, dim)


def _llama3(rope, dim, positions):
    factor, low, high = rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"]
    context = rope["original_max_position_embeddings"]
    plain = _plain(rope["rope_theta"], dim)
    wavelength = 2 * math.pi / plain
    # Long wavelengths are slowed by the factor, short ones kept, those between blended smoothly.
    slowed = ops.where(wavelength > context / low, plain / factor, plain)
    smooth = (context / wavelength - low) / (high - low)
    blended = (1 - smooth) * slowed / factor + smooth * slowed
    between = ops.logical_and(wavelength >= context / high, wavelength <= context / low)
    return ops.where(between, blended, slowed)


def _yarn(rope, dim, positions):
    theta, factor = rope["rope_theta"], rope["factor"]
    powers = _powers(theta, dim)
    extrapolated, interpolated = 1.0 / powers, 1.0 / (factor * powers)
    low, high = (
        _yarn_dimension(rope[beta], dim, theta, rope["original_max_position_embeddings"])
        for beta in ("beta_fast", "beta_slow")
    )
    if rope["truncate"]:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001  # keeps the ramp finite
    ramp = ops.clip((ops.arange(dim // 2, dtype="float32") - low) / (high - low), 0, 1)
    kept = 1 - ramp  # the share of each frequency left unscaled
    return interpolated * (1 - kept) + extrapolated * kept


def _yarn_dimension(rotations, dim, theta, context):
    """The (fractional) dimension whose wavelength fits ``rotations`` turns into ``context``."""
    return (dim * math.log(context / (rotations * 2 * math.pi))) / (2 * math.log(theta))


def _longrope(rope, dim, positions):
    is_long = ops.max(positions) + 1 > rope["original_max_position_embeddings"]
    short = ops.convert_to_tensor(rope["short_factor"], dtype="float32")
    long = ops.convert_to_tensor(rope["long_factor"], dtype="float32")
    return 1.0 / (ops.where(is_long, long, short) * _powers(rope["rope_theta"], dim))


_INVERSE_FREQUENCIES = {
    "default": _default,
    "linear": _linear,
    "dynamic": _dynamic,
    "llama3": _llama3,
    "yarn": _yarn,
    "longrope": _longrope,
}
