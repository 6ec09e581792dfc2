"""RotaryEmbedding and apply_rotary against transformers' own rotary modules, for every rope type in both layouts."""

import json

import keras
import numpy as np
import pytest
import torch
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb as llama_apply_rotary
from transformers.models.phi3.modeling_phi3 import apply_rotary_pos_emb as phi3_apply_rotary

from presetforge.backbones.rotary import RotaryEmbedding, apply_rotary
from presetforge.converters.rope_config import rope_parameters
from tests.backbones.rope_cases import CASES

# On torch the tables are bitwise transformers'; JAX's pow and fused arithmetic round a little differently.
TOLERANCE = 1e-6 if keras.backend.backend() == "torch" else 1e-5


def _positions(length):
    """Two rows: in order, and shuffled (the longest position decides the dynamic and longrope tables)."""
    return np.stack([np.arange(length), np.random.default_rng(length).permutation(length)]).astype("int32")


def _tables(case, config, layer_type, positions):
    rope = rope_parameters(config, layer_type, case.default_theta[layer_type])
    cos, sin = RotaryEmbedding(case.head_dim, rope)(positions)
    return keras.ops.convert_to_numpy(cos), keras.ops.convert_to_numpy(sin)


@pytest.mark.parametrize("layout", ["rope_scaling", "rope_parameters"])
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_tables_match_transformers(case, layout):
    config = case.layouts()[layout]
    for layer_type in case.layer_types:
        for length in case.lengths:
            positions = _positions(length)
            cos, sin = _tables(case, config, layer_type, positions)
            expected_cos, expected_sin = case.reference(config, positions, layer_type)
            assert cos.dtype == sin.dtype == np.float32
            assert cos.shape == expected_cos.shape, (layer_type, length)
            assert np.abs(cos - expected_cos).max() <= TOLERANCE, (layer_type, length)
            assert np.abs(sin - expected_sin).max() <= TOLERANCE, (layer_type, length)


def test_probes_reach_where_each_type_departs_from_plain_rope():
    """Otherwise a rope type computed as the plain one could pass the comparison above."""
    for case in CASES:
        for layer_type in case.layer_types:
            rope = rope_parameters(case.config, layer_type, case.default_theta[layer_type])
            if rope["rope_type"] == "default":
                continue
            plain = {key: rope[key] for key in ("rope_theta", "partial_rotary_factor") if key in rope}
            positions = _positions(max(case.lengths))
            scaled = RotaryEmbedding(case.head_dim, rope)(positions)[0]
            unscaled = RotaryEmbedding(case.head_dim, {"rope_type": "default", **plain})(positions)[0]
            assert np.abs(keras.ops.convert_to_numpy(scaled - unscaled)).max() > 1e-3, case.name


def test_longrope_switches_factors_past_the_original_context():
    rope = {"rope_type": "longrope", "rope_theta": 10000.0, "short_factor": [1.0, 1.0], "long_factor": [2.0, 4.0],
            "original_max_position_embeddings": 8, "attention_factor": 1.0}
    layer = RotaryEmbedding(4, rope)
    within = keras.ops.convert_to_numpy(layer(np.arange(8)[None])[1])  # longest position 7: L = 8, short
    beyond = keras.ops.convert_to_numpy(layer(np.arange(9)[None])[1])  # L = 9: long
    positions = np.arange(9, dtype="float32")[:, None]
    plain = np.array([1.0, 0.01], dtype="float32")
    np.testing.assert_allclose(within[0], np.sin(np.concatenate([positions[:8] * plain] * 2, -1)), atol=1e-6)
    np.testing.assert_allclose(beyond[0], np.sin(np.concatenate([positions * plain / [2.0, 4.0]] * 2, -1)), atol=1e-6)


def test_dynamic_is_stateless():
    """A short call after a long one gets the plain table back (transformers would keep the grown one)."""
    rope = {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0, "max_position_embeddings": 16}
    layer = RotaryEmbedding(8, rope)
    plain = RotaryEmbedding(8, {"rope_type": "default", "rope_theta": 10000.0})
    grown = keras.ops.convert_to_numpy(layer(np.arange(40)[None])[0][:, :12])
    short = keras.ops.convert_to_numpy(layer(np.arange(12)[None])[0])
    assert np.abs(grown - short).max() > 1e-3
    np.testing.assert_array_equal(short, keras.ops.convert_to_numpy(plain(np.arange(12)[None])[0]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("case_name", ["llama-yarn-mscale", "phi3-longrope-partial"])
def test_apply_rotary_matches_transformers(case_name, dtype):
    """Bitwise, in float32 and in bfloat16 (tables cast to the input's dtype first, as transformers does)."""
    case = next(case for case in CASES if case.name == case_name)
    reference_apply = phi3_apply_rotary if "partial" in case_name else llama_apply_rotary
    cos, sin = case.reference(case.config, _positions(100))
    x = torch.randn(2, 3, 100, case.head_dim, generator=torch.Generator().manual_seed(0)).to(dtype)
    expected, _ = reference_apply(x, x, torch.from_numpy(cos).to(dtype), torch.from_numpy(sin).to(dtype))
    name = {torch.float32: "float32", torch.bfloat16: "bfloat16"}[dtype]
    rotated = apply_rotary(keras.ops.cast(x.float().numpy(), name), cos, sin)
    assert keras.backend.standardize_dtype(rotated.dtype) == name
    rotated = keras.ops.convert_to_numpy(keras.ops.cast(rotated, "float32"))
    np.testing.assert_array_equal(rotated, expected.float().numpy())
    if "partial" in case_name:  # the features past the rotary dimension pass through untouched
        np.testing.assert_array_equal(rotated[..., cos.shape[-1]:], x.float().numpy()[..., cos.shape[-1]:])


def test_config_round_trips_through_json():
    case = next(case for case in CASES if case.name == "phi3-longrope-partial")
    layer = RotaryEmbedding(case.head_dim, rope_parameters(case.config), name="rotary")
    config = json.loads(json.dumps(layer.get_config()))
    rebuilt = RotaryEmbedding.from_config(config)
    assert rebuilt.get_config() == layer.get_config()
    assert rebuilt.rotary_dim == 8 and not rebuilt.weights
    positions = _positions(50)
    for ours, theirs in zip(layer(positions), rebuilt(positions)):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours), keras.ops.convert_to_numpy(theirs))


def test_works_in_a_functional_model():
    rope = {"rope_type": "longrope", "rope_theta": 10000.0, "short_factor": [1.0] * 4, "long_factor": [2.0] * 4,
            "original_max_position_embeddings": 8, "attention_factor": 1.2}
    positions = keras.Input(shape=(None,), dtype="int32")
    cos, sin = RotaryEmbedding(8, rope)(positions)
    assert tuple(cos.shape) == (None, None, 8)
    model = keras.Model(positions, [cos, sin])
    eager = RotaryEmbedding(8, rope)(_positions(20))
    for ours, expected in zip(model(_positions(20)), eager):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours), keras.ops.convert_to_numpy(expected))


@pytest.mark.parametrize(
    "head_dim, rope, message",
    [
        (16, {"rope_type": "ntk", "rope_theta": 1.0}, "unknown rope type 'ntk'"),
        (6, {"rope_type": "default", "rope_theta": 1.0, "partial_rotary_factor": 0.5}, "rotary dimension 3"),
    ],
)
def test_refuses_what_it_cannot_compute(head_dim, rope, message):
    with pytest.raises(ValueError, match=message):
        RotaryEmbedding(head_dim, rope)
