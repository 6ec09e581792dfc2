"""XLM-RoBERTa: RoBERTa's architecture under its own model_type, through the whole gate."""

import pytest

from tests.converters.test_roberta import TINY, check_variant

GATE_VARIANTS = {
    "default": {},
    "masked-lm-no-pooler": dict(model_class="XLMRobertaForMaskedLM"),
    "pad-id-0": dict(pad_token_id=0),
    "two-token-types": dict(type_vocab_size=2),
    "tanh-gelu": dict(hidden_act="gelu_new"),
}


@pytest.mark.parametrize("variant", GATE_VARIANTS)
def test_variant_passes_the_gate(tmp_path, variant):
    check_variant(tmp_path, "xlm-roberta", {**TINY, **GATE_VARIANTS[variant]})
