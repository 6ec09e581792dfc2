"""rope_parameters: both upstream layouts to one canonical dict, transformers' defaults, refusals by name."""

import json
import math

import pytest

from presetforge.converters.rope_config import ROPE_CONFIG_KEYS, rope_parameters
from presetforge.errors import ConversionError
from tests.backbones.rope_cases import CASES

_LLAMA = dict(hidden_size=64, num_attention_heads=4, max_position_embeddings=64)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_both_layouts_give_the_same_canonical_dict(case):
    layouts = case.layouts()
    for layer_type in case.layer_types:
        older, newer = (rope_parameters(layouts[key], layer_type, case.default_theta[layer_type]) for key in layouts)
        assert older == newer
        assert json.loads(json.dumps(older)) == older


def _case(name, layer_type=None):
    case = next(case for case in CASES if case.name == name)
    return rope_parameters(case.config, layer_type, case.default_theta[layer_type])


def test_defaults_are_resolved_as_transformers_resolves_them():
    assert _case("qwen2-yarn") == {
        "rope_type": "yarn", "rope_theta": 1000000.0, "factor": 4.0, "original_max_position_embeddings": 32,
        "attention_factor": 0.1 * math.log(4.0) + 1.0, "beta_fast": 32.0, "beta_slow": 1.0, "truncate": True,
    }
    mscaled = (0.1 * 0.707 * math.log(4.0) + 1) / (0.1 * math.log(4.0) + 1)
    assert _case("llama-yarn-mscale")["attention_factor"] == mscaled
    # longrope: the factor is max / original context, its attention scaling derived from it
    longrope = _case("phi3-longrope")
    assert longrope["original_max_position_embeddings"] == 32
    assert longrope["attention_factor"] == math.sqrt(1 + math.log(128 / 32) / math.log(32))
    assert _case("phi3-longrope-partial")["partial_rotary_factor"] == 0.5
    # Gemma 3: rope_scaling is for the global layers; sliding ones keep the plain rope at the local base
    assert _case("gemma3-linear", "full_attention") == {"rope_type": "linear", "rope_theta": 100000.0, "factor": 8.0}
    assert _case("gemma3-linear", "sliding_attention") == {"rope_type": "default", "rope_theta": 1000.0}


def test_base_and_contexts_fall_back_like_transformers():
    assert rope_parameters(_LLAMA) == {"rope_type": "default", "rope_theta": 10000.0}
    assert rope_parameters(_LLAMA, default_theta=5e5)["rope_theta"] == 5e5
    assert rope_parameters({**_LLAMA, "rope_scaling": None, "partial_rotary_factor": 1.0}) == rope_parameters(_LLAMA)
    # the rope dict's own base wins over the top-level one
    assert rope_parameters({**_LLAMA, "rope_theta": 1.0, "rope_parameters": {"rope_theta": 2.0}})["rope_theta"] == 2.0
    llama3 = {"rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4}
    assert rope_parameters({**_LLAMA, "rope_scaling": llama3})["original_max_position_embeddings"] == 64
    # a top-level original context (Phi-3's) outranks the rope dict's, but not in a per-layer-type dict
    inside = {**llama3, "original_max_position_embeddings": 16}
    assert rope_parameters({**_LLAMA, "original_max_position_embeddings": 32, "rope_scaling": inside})[
        "original_max_position_embeddings"] == 32
    nested = {"full_attention": inside, "sliding_attention": {"rope_type": "default"}}
    config = {**_LLAMA, "original_max_position_embeddings": 32, "rope_parameters": nested}
    assert rope_parameters(config, "full_attention")["original_max_position_embeddings"] == 16
    # yarn: an explicit null factor is the ratio of the two contexts; a zero beta counts as unset
    yarn = {"rope_type": "yarn", "factor": None, "original_max_position_embeddings": 16, "beta_fast": 0}
    assert rope_parameters({**_LLAMA, "rope_parameters": yarn})["factor"] == 4.0
    assert rope_parameters({**_LLAMA, "rope_parameters": yarn})["beta_fast"] == 32.0


def test_reads_only_the_keys_it_declares():
    """ROPE_CONFIG_KEYS is exactly what the cases make it read, besides the head size longrope checks against."""
    read = set()

    class Recording(dict):
        def get(self, key, default=None):
            read.add(key)
            return super().get(key, default)

        def __getitem__(self, key):
            read.add(key)
            return super().__getitem__(key)

        def __contains__(self, key):
            read.add(key)
            return super().__contains__(key)

    for case in CASES:
        for config in case.layouts().values():
            for layer_type in case.layer_types:
                rope_parameters(Recording(config), layer_type, case.default_theta[layer_type])
    assert read - {"head_dim", "hidden_size", "num_attention_heads"} == ROPE_CONFIG_KEYS


_LONGROPE = {"type": "longrope", "short_factor": [1.0] * 8, "long_factor": [1.0] * 8}


@pytest.mark.parametrize(
    "config, layer_type, named",
    [
        ({"rope_scaling": {"type": "ntk", "factor": 2.0}}, None, "rope type 'ntk'"),
        ({"rope_parameters": {"rope_type": "proportional"}}, None, "rope type 'proportional'"),
        ({"rope_scaling": {"type": "linear", "factor": 2.0, "finetuned": True}}, None, "'finetuned'"),
        ({"rope_scaling": {"type": "default", "factor": 2.0}}, None, "'factor'"),
        ({"rope_scaling": {"type": "linear"}}, None, "lacks 'factor'"),
        ({"rope_parameters": {"rope_type": "dynamic"}}, None, "lacks 'factor'"),
        ({"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "high_freq_factor": 4.0}}, None, "'low_freq_factor'"),
        ({"rope_scaling": {"type": "linear", "factor": "2"}}, None, "factor='2'"),
        ({"rope_scaling": {"type": "linear", "factor": None}}, None, "factor=None"),
        ({"rope_scaling": {"type": "linear", "rope_type": "dynamic", "factor": 2.0}}, None, "type and rope_type"),
        ({"rope_scaling": {"type": "linear", "factor": 2.0}, "rope_parameters": {"rope_type": "linear"}}, None,
         "both 'rope_scaling' and 'rope_parameters'"),
        ({"rope_scaling": {**_LONGROPE, "long_factor": [1.0] * 4}}, None, "long_factor has 4 entries"),
        ({"rope_theta": None}, None, "rope_theta=None"),
        ({"partial_rotary_factor": 1.5}, None, "partial_rotary_factor=1.5"),
        ({"rope_scaling": {"rope_type": "yarn", "factor": 2.0, "truncate": "no"}}, None, "truncate='no'"),
        ({"rope_parameters": {"full_attention": {"rope_type": "default"}}}, None, "keyed by layer type"),
        ({"rope_parameters": {"full_attention": {"rope_type": "default"}}}, "sliding_attention",
         "rope_parameters['sliding_attention'] is missing"),
        ({"rope_parameters": {"rope_type": "default"}}, "sliding_attention", "no entry for 'sliding_attention'"),
        ({"rope_theta": 1e6}, "sliding_attention", "'rope_local_base_freq'"),
        ({"rope_parameters": {"full_attention": {"rope_type": "yarn", "factor": 2.0, "truncate": False}}},
         "full_attention", "truncate=false"),
    ],
)
def test_refuses_by_name_in_one_line(config, layer_type, named):
    with pytest.raises(ConversionError) as raised:
        rope_parameters({**_LLAMA, **config}, layer_type)
    assert named in str(raised.value)
    assert "\n" not in str(raised.value)
