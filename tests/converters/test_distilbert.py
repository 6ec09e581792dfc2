"""DistilBERT: its own tensor names, no token types or pooler; every variant through the whole gate."""

import json

import pytest

from presetforge import Backbone
from presetforge.converters import convert
from presetforge.errors import ConversionError
from tests.checkpoints import make_encoder
from tests.converters.helpers import encoder_gate_report, leftovers

TINY = dict(vocab_size=101, dim=32, hidden_dim=48, n_layers=2, n_heads=4, max_position_embeddings=48)

GATE_VARIANTS = {
    "default": {},
    "masked-lm-head": dict(model_class="DistilBertForMaskedLM"),  # distilbert.* names, vocab_* head ignored
    "relu": dict(activation="relu"),
    "tanh-gelu": dict(activation="gelu_new"),
    # The flag only initialises the table; the stored (here random) table is what transformers uses.
    "sinusoidal-flag": dict(sinusoidal_pos_embds=True),
}


@pytest.mark.parametrize("variant", GATE_VARIANTS)
def test_variant_passes_the_gate(tmp_path, variant):
    report = encoder_gate_report(tmp_path, "distilbert", {**TINY, **GATE_VARIANTS[variant]})
    assert [s.name for s in report.stages] == ["embeddings", "layer_0", "layer_1"]
    assert report.inputs["probes"]["full length"]["lengths"] == [48]
    assert set(Backbone.from_preset(tmp_path / "preset").input) == {"token_ids", "padding_mask"}


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"attention_sink": True}, "'attention_sink' is not understood"),
        ({"activation": "quick_gelu"}, "activation='quick_gelu'"),
    ],
)
def test_unknown_keys_and_values_are_refused(tmp_path, edit, message):
    source = make_encoder(tmp_path / "hf", "distilbert", **TINY)
    config = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps({**config, **edit}))
    with pytest.raises(ConversionError, match=message) as info:
        convert(source, tmp_path / "preset")
    assert "\n" not in str(info.value)
    assert leftovers(tmp_path / "preset") == []
