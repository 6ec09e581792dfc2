"""Exhaustive weight verification: one changed element anywhere fails the gate, named by variable and index."""

import json

import h5py
import ml_dtypes
import numpy as np
import pytest
from click.testing import CliRunner

from presetforge import Backbone, preset
from presetforge.backbones import weights
from presetforge.checks import report as report_lib
from presetforge.checks.weights import check_weights
from presetforge.cli import main
from presetforge.converters import convert, plan
from presetforge.pipeline import publish
from tests.checkpoints import make_bert, make_gpt2
from tests.verified import verified_preset

MAKERS = {"gpt2": make_gpt2, "bert": make_bert}


def rewrite_manifest(root):
    """What a careless or malicious edit does after changing a file: make the manifest agree again."""
    preset.write_json(root / preset.MANIFEST_FILE, preset.build_manifest(root))


def set_stored(root, variable_path, index, value):
    """Overwrite one stored element (or row, with a 1-tuple ``index``) of a variable in place."""
    place = weights.layout(Backbone.from_preset(root, load_weights=False)).datasets[variable_path].path
    for name in weights.weight_files(root):  # the file holding it: one of several shards, maybe
        with h5py.File(root / name, "r") as f:
            if place in f:
                break
    with h5py.File(root / name, "r+") as f:
        dataset = f[place]
        if dataset.attrs.get("dtype") == "bfloat16":
            array = dataset[()].view(ml_dtypes.bfloat16)
            array[index] = value
            dataset[...] = array.view(dataset.dtype)
        else:
            dataset[index] = value
    rewrite_manifest(root)


@pytest.fixture(scope="module")
def verified(tmp_path_factory):
    """kind → (upstream dir, verified preset dir), converted and checked once per module."""
    return {kind: verified_preset(tmp_path_factory.mktemp(kind), make) for kind, make in MAKERS.items()}


@pytest.fixture
def copy_of(verified, tmp_path):
    import shutil

    def copy(kind):
        source, good = verified[kind]
        return source, shutil.copytree(good, tmp_path / kind)

    return copy


def test_every_element_is_compared(verified):
    for kind, (source, good) in verified.items():
        result = check_weights(good, source)
        backbone = Backbone.from_preset(good)
        assert result.passed and result.variables == len(backbone.weights)
        assert result.elements == backbone.count_params()


TAMPERS = [
    # (kind, variable, index): a token row (ids the probes never draw), a position row past
    # the padded batch, one element of a kernel cut from a fused tensor (GPT-2's c_attn) or
    # transposed from torch's layout (BERT), and a bias.
    # A zeroed row differs first at its column 0.
    ("gpt2", "token_embedding/embeddings", (90,), (90, 0)),
    ("gpt2", "position_embedding/embeddings", (30,), (30, 0)),
    ("gpt2", "transformer_layer_1/self_attention/key/kernel", (3, 5), (3, 5)),
    ("gpt2", "transformer_layer_0/feedforward_output/bias", (7,), (7,)),
    ("bert", "token_embedding/embeddings", (95,), (95, 0)),
    ("bert", "position_embedding/embeddings", (29,), (29, 0)),
    ("bert", "transformer_layer_0/self_attention/query/kernel", (11, 2), (11, 2)),
    ("bert", "pooled_dense/kernel", (0, 31), (0, 31)),
]


@pytest.mark.parametrize("kind,variable,index,expected_index", TAMPERS)
def test_one_changed_element_fails_check_and_publish(copy_of, kind, variable, index, expected_index, standin_hub):
    source, tampered = copy_of(kind)
    set_stored(tampered, variable, index, 0.0)

    # Bound to other weights than those checked: no longer verified, whatever the manifest says.
    with pytest.raises(publish.PublishError, match="made for other files"):
        publish.publish(tampered, ["hf://standin/tampered"])

    result = CliRunner().invoke(main, ["check", str(tampered), "--reference", str(source)])
    assert result.exit_code == 1, result.output
    assert f"'{variable}' differs at index {expected_index}: stored 0.0" in " ".join(result.output.split())
    report = report_lib.load(tampered)
    assert report.weights.first_mismatch["variable"] == variable
    assert tuple(report.weights.first_mismatch["index"]) == expected_index
    with pytest.raises(publish.PublishError, match=f"its parity check failed \\(weights: '{variable}' differs"):
        publish.publish(tampered, ["hf://standin/tampered"])
    assert standin_hub.log == []


def test_mismatches_are_located_across_streaming_blocks(tmp_path, monkeypatch):
    """Tiny blocks, so every tensor streams in many: the bytes and the located index must not change."""
    source = make_gpt2(tmp_path / "hf", n_embd=64, vocab_size=200)
    convert(source, tmp_path / "whole")
    monkeypatch.setattr(plan, "BLOCK_BYTES", 1000)  # about 4 rows of 64 floats per block
    convert(source, tmp_path / "blocks")
    assert preset.verify(tmp_path / "blocks") == preset.verify(tmp_path / "whole")
    assert check_weights(tmp_path / "blocks", source).passed
    set_stored(tmp_path / "blocks", "token_embedding/embeddings", (173, 41), 0.5)
    result = check_weights(tmp_path / "blocks", source)
    assert not result.passed
    assert result.first_mismatch == {
        "variable": "token_embedding/embeddings",
        "index": [173, 41],
        "stored": 0.5,
        "expected": result.first_mismatch["expected"],
    }
    assert result.first_mismatch["expected"] != 0.5


def test_bfloat16_weights_are_round_to_nearest_even_and_one_ulp_fails(tmp_path):
    source = make_gpt2(tmp_path / "hf")
    convert(source, tmp_path / "bf16", dtype="bfloat16")
    assert check_weights(tmp_path / "bf16", source).passed
    stored = Backbone.from_preset(tmp_path / "bf16").weights[0].numpy()  # token embeddings
    value = np.asarray(stored[5, 3], ml_dtypes.bfloat16)
    one_ulp_up = (value.view(np.uint16) + 1).view(ml_dtypes.bfloat16)
    set_stored(tmp_path / "bf16", "token_embedding/embeddings", (5, 3), one_ulp_up)
    result = check_weights(tmp_path / "bf16", source)
    assert result.first_mismatch["index"] == [5, 3]
    assert result.first_mismatch["stored"] == float(one_ulp_up)


@pytest.mark.parametrize(
    "edit",
    [
        ("layer_norm_epsilon", 0.5),
        ("activation", "relu"),
    ],
)
def test_an_edited_config_is_not_verified(copy_of, edit):
    source, tampered = copy_of("gpt2")
    config = json.loads((tampered / "config.json").read_text())
    config["config"][edit[0]] = edit[1]
    (tampered / "config.json").write_text(json.dumps(config))
    rewrite_manifest(tampered)
    assert "made for other files" in report_lib.verification_problem(tampered)
    with pytest.raises(publish.PublishError, match="made for other files"):
        publish.publish(tampered, [str(tampered.parent / "registry")])

    result = CliRunner().invoke(main, ["check", str(tampered), "--reference", str(source)])
    assert result.exit_code == 1
    assert f"config argument '{edit[0]}' is {edit[1]!r}" in result.output
    assert "its parity check failed (weights: config argument" in report_lib.verification_problem(tampered)


def test_an_edited_tokenizer_is_not_verified(copy_of):
    _, tampered = copy_of("bert")
    asset = next(p for p in (tampered / "assets").rglob("*") if p.is_file())
    asset.write_text(asset.read_text().replace("[MASK]", "[MASQ]"))
    rewrite_manifest(tampered)
    assert "made for other files" in report_lib.verification_problem(tampered)
    with pytest.raises(publish.PublishError, match="made for other files"):
        publish.publish(tampered, [str(tampered.parent / "registry")])


def test_metadata_report_and_card_stay_outside_the_binding(copy_of):
    _, copy = copy_of("gpt2")
    digest = preset.behaviour_digest(copy)
    metadata = json.loads((copy / "metadata.json").read_text())
    metadata["note"] = "describes, does not compute"
    (copy / "metadata.json").write_text(json.dumps(metadata))
    (copy / "README.md").write_text("another card")
    rewrite_manifest(copy)
    assert preset.behaviour_digest(copy) == digest
    assert report_lib.verification_problem(copy) is None


@pytest.mark.parametrize("layout", ["sharded-preset", "bin-upstream", "sharded-upstream"])
def test_every_layout_is_checked_whole(tmp_path, layout):
    fmt = {"bin-upstream": "bin", "sharded-upstream": "sharded"}.get(layout, "safetensors")
    source = make_gpt2(tmp_path / "hf", fmt=fmt)
    shard = {"max_shard_size_gb": 40_000 / 1024**3} if layout == "sharded-preset" else {}
    convert(source, tmp_path / "preset", **shard)
    assert (len(preset.weights_files(tmp_path / "preset")) > 3) is (layout == "sharded-preset")
    result = check_weights(tmp_path / "preset", source)
    assert result.passed and result.elements == Backbone.from_preset(tmp_path / "preset").count_params()
    set_stored(tmp_path / "preset", "transformer_layer_1/feedforward_output/kernel", (5, 6), 0.0)
    assert check_weights(tmp_path / "preset", source).first_mismatch["index"] == [5, 6]
