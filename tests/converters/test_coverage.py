"""Coverage is enforced: every upstream tensor used or deliberately ignored, every variable filled once,
shapes equal; any failure names the tensor and leaves nothing behind."""

import json

import pytest
import torch

from presetforge import Backbone, PresetError, preset
from presetforge.converters import convert
from presetforge.errors import ConversionError
from tests.checkpoints import make_bert, make_gpt2, rewrite_tensors
from tests.converters.helpers import leftovers


def _refused(source, out, match):
    with pytest.raises(ConversionError, match=match) as info:
        convert(source, out)
    assert leftovers(out) == []
    return info.value


def test_missing_tensor_is_named(tmp_path):
    source = rewrite_tensors(
        make_gpt2(tmp_path / "hf"), lambda t: {k: v for k, v in t.items() if k != "h.1.mlp.c_fc.bias"}
    )
    error = _refused(source, tmp_path / "preset", r"'h\.1\.mlp\.c_fc\.bias' is missing")
    assert error.tensor == "h.1.mlp.c_fc.bias"
    assert "transformer_layer_1/feedforward_intermediate/bias" in str(error)


def test_missing_pooler_is_named(tmp_path):
    source = make_bert(tmp_path / "hf", model_class="BertForMaskedLM")  # no pooling layer
    _refused(source, tmp_path / "preset", r"'pooler\.dense\.weight'.*missing")


def test_unknown_tensor_is_named(tmp_path):
    source = rewrite_tensors(make_gpt2(tmp_path / "hf"), lambda t: {**t, "h.0.attn.rotary.inv_freq": torch.ones(4)})
    error = _refused(
        source, tmp_path / "preset", r"'h\.0\.attn\.rotary\.inv_freq' is neither converted nor deliberately ignored"
    )
    assert error.tensor == "h.0.attn.rotary.inv_freq"


def test_task_head_is_not_dropped_silently(tmp_path):
    source = make_bert(tmp_path / "hf", model_class="BertForSequenceClassification")
    _refused(source, tmp_path / "preset", r"'classifier\.bias', 'classifier\.weight' are neither converted")


def test_tensor_for_a_layer_the_config_does_not_have_is_named(tmp_path):
    source = make_gpt2(tmp_path / "hf")
    config = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps({**config, "n_layer": 1}))
    _refused(source, tmp_path / "preset", r"'h\.1\.")


def test_shape_mismatch_is_named(tmp_path):
    source = make_gpt2(tmp_path / "hf")
    config = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps({**config, "n_positions": 16}))
    _refused(
        source, tmp_path / "preset", r"'wpe\.weight' \(32, 32\) gives 'position_embedding/embeddings' shape \(32, 32\)"
    )


def test_unsplittable_fused_tensor_is_named(tmp_path):
    def widen(t):
        t["h.0.attn.c_attn.bias"] = torch.zeros(97)
        return t

    source = rewrite_tensors(make_gpt2(tmp_path / "hf"), widen)
    _refused(source, tmp_path / "preset", r"'h\.0\.attn\.c_attn\.bias' of shape \(97,\) cannot be converted")


def test_same_weight_under_two_prefixes_is_refused(tmp_path):
    source = rewrite_tensors(
        make_gpt2(tmp_path / "hf"), lambda t: {**t, "transformer.wte.weight": t["wte.weight"].clone()}
    )
    _refused(source, tmp_path / "preset", r"'transformer\.wte\.weight' and 'wte\.weight' both stand for 'wte\.weight'")


def test_integer_tensor_is_refused(tmp_path):
    source = rewrite_tensors(
        make_gpt2(tmp_path / "hf"), lambda t: {**t, "ln_f.bias": torch.zeros(32, dtype=torch.int8)}
    )
    _refused(source, tmp_path / "preset", r"'ln_f\.bias' is int8")


def test_failure_while_streaming_leaves_nothing(tmp_path):
    source = make_gpt2(tmp_path / "hf")

    def progress(done, total, name):
        if done == total // 2:
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        convert(source, tmp_path / "preset", progress=progress)
    assert leftovers(tmp_path / "preset") == []


def test_failure_keeps_an_existing_preset_intact(tmp_path):
    source = make_gpt2(tmp_path / "hf")
    convert(source, tmp_path / "preset")
    identity = preset.verify(tmp_path / "preset")
    broken = rewrite_tensors(make_gpt2(tmp_path / "hf2"), lambda t: {k: v for k, v in t.items() if k != "ln_f.bias"})
    with pytest.raises(ConversionError):
        convert(broken, tmp_path / "preset")
    assert preset.verify(tmp_path / "preset") == identity
    assert leftovers(tmp_path / "preset") == ["preset"]


def test_non_preset_output_directory_is_refused_and_untouched(tmp_path):
    source = make_gpt2(tmp_path / "hf")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(PresetError, match="not a preset"):
        convert(source, out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_reconverting_replaces_the_whole_preset(tmp_path):
    source = make_gpt2(tmp_path / "hf", tokenizer=True)
    out = tmp_path / "preset"
    convert(source, out)
    assert (out / preset.TOKENIZER_CONFIG_FILE).is_file()
    with preset.writing(out) as stage:
        stage.file("parity.json").write_text("{}")
    first = preset.sha256_file(out / preset.WEIGHTS_FILE)
    convert(make_gpt2(tmp_path / "hf2", seed=1), out)
    assert not (out / preset.TOKENIZER_CONFIG_FILE).exists() and not (out / "parity.json").exists()
    assert preset.sha256_file(out / preset.WEIGHTS_FILE) != first
    preset.verify(out)
    Backbone.from_preset(out)
