"""RoBERTa: positions counted past the padding id, the token-type row, a pooler only where the
checkpoint has one; every variant through the whole gate, refusals in one line."""

import json

import numpy as np
import pytest
import transformers

from presetforge import Backbone
from presetforge.converters import convert, get_converter
from presetforge.errors import ConversionError
from tests.checkpoints import make_encoder, reference_outputs
from tests.converters.helpers import encoder_gate_report, leftovers

TINY = dict(
    vocab_size=101,
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=50,  # 48 positions past pad_token_id 1
    type_vocab_size=1,
    layer_norm_eps=1e-5,
    pad_token_id=1,
)

GATE_VARIANTS = {
    "default": {},  # RobertaModel: the pooler is in the checkpoint
    "masked-lm-no-pooler": dict(model_class="RobertaForMaskedLM"),  # roberta.* names, lm_head.*, no pooler
    "pad-id-0": dict(pad_token_id=0),
    "pad-id-5": dict(pad_token_id=5, max_position_embeddings=54),
    "two-token-types": dict(type_vocab_size=2),
    "relu": dict(hidden_act="relu"),
    "tanh-gelu": dict(hidden_act="gelu_new"),
    "epsilon-1e-12": dict(layer_norm_eps=1e-12),
}


def check_variant(tmp_path, model_type, config):
    report = encoder_gate_report(tmp_path, model_type, config)
    pooled = ["pooled_output"] if "model_class" not in config else []
    assert [s.name for s in report.stages] == ["embeddings", "layer_0", "layer_1", *pooled]
    usable = config["max_position_embeddings"] - config["pad_token_id"] - 1
    assert report.inputs["probes"]["full length"]["lengths"] == [usable]


@pytest.mark.parametrize("variant", GATE_VARIANTS)
def test_variant_passes_the_gate(tmp_path, variant):
    check_variant(tmp_path, "roberta", {**TINY, **GATE_VARIANTS[variant]})


@pytest.mark.parametrize("pad_token_id", [1, 5])
def test_a_token_with_the_padding_id_takes_the_padding_position(tmp_path, pad_token_id):
    config = {**TINY, "pad_token_id": pad_token_id, "max_position_embeddings": 48 + pad_token_id + 1}
    source = make_encoder(tmp_path / "hf", "roberta", **config)
    convert(source, tmp_path / "preset")
    backbone = Backbone.from_preset(tmp_path / "preset")
    assert set(backbone.input) == {"token_ids", "padding_mask"}
    # The padding id inside the text as well as after it (the tokenizer pads with it): each
    # occurrence takes row pad_token_id and the real tokens after it count on without it.
    pad = pad_token_id
    token_ids = np.array([[7, pad, 9, 11, pad, 3, 4, 8], [7, 9, 11, 3, pad, pad, pad, pad]])
    padding_mask = np.array([[1] * 8, [1] * 5 + [0] * 3])
    x = {"token_ids": token_ids.astype("int32"), "padding_mask": padding_mask.astype("int32")}
    reference = transformers.RobertaModel.from_pretrained(source, attn_implementation="eager").eval()
    expected = reference_outputs(reference, x)
    ours = backbone.predict(x, verbose=0)
    keep = padding_mask.astype(bool)
    assert np.abs(ours["sequence_output"] - expected["last_hidden_state"])[keep].max() <= 1e-5
    assert np.abs(ours["pooled_output"] - expected["pooler_output"]).max() <= 1e-5


@pytest.mark.parametrize("model_type", ["distilbert", "roberta", "xlm-roberta"])
def test_a_key_left_out_means_the_config_class_default(model_type):
    converter = get_converter(model_type)
    defaults = transformers.AutoConfig.for_model(model_type).to_dict()
    assert converter.backbone_config({}) == converter.backbone_config(defaults)


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"attention_sink": True}, "'attention_sink' is not understood"),
        ({"hidden_act": "quick_gelu"}, "hidden_act='quick_gelu'"),
        ({"position_embedding_type": "relative_key"}, "position_embedding_type='relative_key'"),
        ({"is_decoder": True}, "is_decoder=True"),
        ({"add_cross_attention": True}, "add_cross_attention=True"),
        ({"pad_token_id": None}, "pad_token_id=None"),
        ({"max_position_embeddings": 2}, "max_position_embeddings=2 with pad_token_id=1"),
    ],
)
def test_unknown_keys_and_values_are_refused(tmp_path, edit, message):
    source = make_encoder(tmp_path / "hf", "roberta", **TINY)
    config = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps({**config, **edit}))
    with pytest.raises(ConversionError, match=message) as info:
        convert(source, tmp_path / "preset")
    assert "\n" not in str(info.value)
    assert leftovers(tmp_path / "preset") == []


def test_the_weight_check_names_a_pooler_the_preset_claims_differently(tmp_path):
    from presetforge.checks.weights import check_weights

    source = make_encoder(tmp_path / "hf", "roberta", **TINY)
    convert(source, tmp_path / "preset")
    serialized = json.loads((tmp_path / "preset" / "config.json").read_text())
    assert serialized["config"]["add_pooling_layer"] is True
    serialized["config"]["add_pooling_layer"] = False
    (tmp_path / "preset" / "config.json").write_text(json.dumps(serialized))
    result = check_weights(tmp_path / "preset", source)
    assert not result.passed
    assert result.config_mismatches == [{"argument": "add_pooling_layer", "preset": False, "upstream": True}]
