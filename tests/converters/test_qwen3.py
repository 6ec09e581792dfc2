"""Qwen3: every config variant the family allows converts and passes the whole gate against transformers.

Qwen3's windows follow Qwen2's rules (the shared ``WINDOW_VARIANTS``); its own
are the per-head query/key norms, whose epsilon is the config's ``rms_norm_eps``
(``norm-epsilon`` makes it large enough that a hard-coded one fails the gate),
the optional biases on all four projections, and ``head_dim``, which defaults
to 128 rather than ``hidden_size / num_attention_heads``.
"""

import pytest

from tests.converters.decoder_gate import ROPE_VARIANTS
from tests.converters.test_qwen2 import LAYER_REFUSALS, SAVED_CONFIG, TINY as QWEN2_TINY
from tests.converters.test_qwen2 import WINDOW_VARIANTS, assert_refused, run_variant

TINY = {**QWEN2_TINY, "head_dim": 8}

GATE_VARIANTS = {
    **WINDOW_VARIANTS,
    "gqa-4": dict(num_attention_heads=8, num_key_value_heads=2),
    "mqa": dict(num_key_value_heads=1),
    "mha": dict(num_key_value_heads=4),
    "head-dim-wider": dict(head_dim=16),
    "head-dim-narrower": dict(head_dim=4),
    "head-dim-absent": dict(head_dim=128),  # and then removed from config.json (see below)
    "attention-bias": dict(attention_bias=True),
    "norm-epsilon": dict(rms_norm_eps=0.1),
    "tied": dict(tie_word_embeddings=True),
    "gelu-mlp": dict(hidden_act="gelu_pytorch_tanh"),
    **ROPE_VARIANTS,
}
QWEN3_SAVED_CONFIG = {
    **SAVED_CONFIG,
    "head-dim-absent": lambda config: {k: v for k, v in config.items() if k != "head_dim"},
}


@pytest.mark.parametrize("layout", ["current", "older"])
@pytest.mark.parametrize("variant", GATE_VARIANTS)
def test_variant_passes_the_gate(tmp_path, variant, layout):
    config = {**TINY, **GATE_VARIANTS[variant]}
    run_variant(tmp_path, "qwen3", config, variant, layout, saved_config=QWEN3_SAVED_CONFIG)


@pytest.mark.parametrize(
    "edit, message",
    [
        *LAYER_REFUSALS,
        ({"head_dim": None}, "head_dim=None"),
        ({"mlp_bias": True}, "'mlp_bias' is not understood"),
    ],
)
def test_unknown_keys_and_values_are_refused(tmp_path, edit, message):
    assert_refused(tmp_path, "qwen3", TINY, edit, message)
