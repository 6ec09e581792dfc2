"""Qwen2: every config variant the family allows converts and passes the whole gate against transformers.

Windows (8) are shorter than the probes (up to 24 in the padded batch, 48 at
full length). The older layout drops ``layer_types``, so which layers slide is
then derived from ``use_sliding_window`` and ``max_window_layers``, as
transformers derives it; variants whose ``layer_types`` no such rule gives keep them.
"""

import pytest

from presetforge.converters import convert
from presetforge.errors import ConversionError
from tests.checkpoints import make_causal_lm
from tests.converters.decoder_gate import ROPE_VARIANTS, older_layout, passes_gate, rewrite_config
from tests.converters.helpers import leftovers

TINY = dict(
    vocab_size=101,
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=48,
    rms_norm_eps=1e-5,
    use_sliding_window=True,
    sliding_window=8,
    max_window_layers=1,  # layer 0 attends fully, layer 1 slides
)

# Which layers slide: the variants Qwen2 and Qwen3 share.
WINDOW_VARIANTS = {
    "upper-layer-slides": {},
    "all-layers-slide": dict(max_window_layers=0),
    # As Qwen2.5 configs have it: a window that use_sliding_window=false turns off (see SAVED_CONFIG).
    "window-off": dict(use_sliding_window=False, max_window_layers=0),
    "lower-layer-slides": dict(layer_types=["sliding_attention", "full_attention"]),
}
EXPLICIT_LAYER_TYPES = {"lower-layer-slides"}  # kept in the older layout: max_window_layers cannot say it
# config.json as the Hub has it, where transformers would save it otherwise.
SAVED_CONFIG = {"window-off": lambda config: {**config, "sliding_window": 8}}

GATE_VARIANTS = {
    **WINDOW_VARIANTS,
    "gqa-4": dict(num_attention_heads=8, num_key_value_heads=2),
    "mqa": dict(num_key_value_heads=1),
    "mha": dict(num_key_value_heads=4),
    "head-dim-differs": dict(head_dim=16),
    "tied": dict(tie_word_embeddings=True),
    "gelu-mlp": dict(hidden_act="gelu_pytorch_tanh"),
    "use-mrope-false": dict(use_mrope=False),  # as some Qwen2.5 configs say
    **ROPE_VARIANTS,
}


def run_variant(tmp_path, model_type, config, variant, layout, saved_config=SAVED_CONFIG):
    """Make the variant's checkpoint, in ``layout``, and hold it to the gate."""
    source = make_causal_lm(tmp_path / "hf", model_type, **config)
    if variant in saved_config:
        rewrite_config(source, saved_config[variant])
    if layout == "older":
        older_layout(source, keep_layer_types=variant in EXPLICIT_LAYER_TYPES)
    return passes_gate(source, tmp_path / "preset", num_layers=config["num_hidden_layers"], length=48)


@pytest.mark.parametrize("layout", ["current", "older"])
@pytest.mark.parametrize("variant", GATE_VARIANTS)
def test_variant_passes_the_gate(tmp_path, variant, layout):
    run_variant(tmp_path, "qwen2", {**TINY, **GATE_VARIANTS[variant]}, variant, layout)


# Refusals Qwen2 and Qwen3 share: what transformers cannot run, or what presetforge does not implement.
LAYER_REFUSALS = [
    ({"layer_types": ["full_attention", "chunked_attention"]}, "'chunked_attention' is not implemented"),
    ({"layer_types": ["full_attention"]}, "layer_types has 1 entries for 2 layers"),
    ({"use_sliding_window": False, "layer_types": ["full_attention", "sliding_attention"]}, "no window"),
    ({"sliding_window": None, "layer_types": ["full_attention", "sliding_attention"]}, "no window"),
    ({"sliding_window": -8}, "sliding_window=-8 is not a positive integer"),
    ({"partial_rotary_factor": 0.5}, "partial_rotary_factor=0.5"),
    ({"hidden_act": "quick_gelu"}, "hidden_act='quick_gelu'"),
]


def assert_refused(tmp_path, model_type, config, edit, message):
    source = make_causal_lm(tmp_path / "hf", model_type, **config)
    rewrite_config(source, lambda saved: {**saved, **edit})
    with pytest.raises(ConversionError, match=message) as info:
        convert(source, tmp_path / "preset")
    assert "\n" not in str(info.value)
    assert leftovers(tmp_path / "preset") == []


@pytest.mark.parametrize(
    "edit, message",
    [
        *LAYER_REFUSALS,
        ({"attention_bias": False}, "'attention_bias' is not understood"),
        ({"use_mrope": True}, "use_mrope=True"),
    ],
)
def test_unknown_keys_and_values_are_refused(tmp_path, edit, message):
    assert_refused(tmp_path, "qwen2", TINY, edit, message)

