"""Raw HF checkpoints load through from_preset (converted once, cached), locally and from the hub."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from presetforge import Backbone, HandleError, Tokenizer
from presetforge.converters import convert, on_load
from presetforge.registry import handles, hf
from tests.backbones.tiny import inputs, outputs
from tests.checkpoints import make_bert, make_causal_lm


def test_local_checkpoint_converts_on_load_once(tmp_path):
    source = make_bert(tmp_path / "hf", tokenizer=True)
    convert(source, tmp_path / "explicit")
    x = inputs("bert")
    loaded = Backbone.from_preset(source)
    for a, b in zip(outputs(loaded, x), outputs(Backbone.from_preset(tmp_path / "explicit"), x)):
        np.testing.assert_array_equal(a, b)
    cached = list(on_load.cache_root().iterdir())
    stamp = [p.stat().st_mtime_ns for p in cached]
    assert Tokenizer.from_preset(source)("the cat") == Tokenizer.from_preset(tmp_path / "explicit")("the cat")
    assert [p.stat().st_mtime_ns for p in on_load.cache_root().iterdir()] == stamp


def test_resolution_refuses_a_raw_checkpoint_unless_handed_a_converter(tmp_path):
    source = make_bert(tmp_path / "hf")
    with pytest.raises(HandleError) as refused:
        handles.resolve(source)
    assert str(refused.value) == (
        f"{source} is a Hugging Face checkpoint, not a preset: load it with presetforge.Backbone or "
        "presetforge.Tokenizer (which convert it on load), or convert it with `presetforge convert`"
    )
    assert handles.resolve(source, lambda path: tmp_path / "converted") == tmp_path / "converted"


# In a fresh interpreter: what wires convert-on-load is the public API alone, on first use;
# importing the converters changes nothing (they used to register a hook into resolution).
WIRING = textwrap.dedent(
    """
    import sys
    from presetforge import HandleError
    from presetforge.backbones import Backbone
    from presetforge.tokenizers import Tokenizer
    import presetforge.converters
    for cls in (Backbone, Tokenizer):
        try:
            cls.from_preset(sys.argv[1])
            print(cls.__name__, "converted")
        except HandleError as e:
            print(cls.__name__, "refused:", e)
    import presetforge
    tokenizer = presetforge.Tokenizer.from_preset(sys.argv[1])
    print("presetforge.Tokenizer", tokenizer("the cat"))
    print("presetforge.BertBackbone", type(presetforge.BertBackbone.from_preset(sys.argv[1])).__name__)
    """
)


def test_the_public_api_alone_converts_on_load(tmp_path):
    source = make_bert(tmp_path / "hf", tokenizer=True)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "PRESETFORGE_CACHE": str(tmp_path / "c")}
    run = [sys.executable, "-c", WIRING, str(source)]
    done = subprocess.run(run, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:2]] == ["Backbone refused", "Tokenizer refused"]
    assert lines[2] == f"presetforge.Tokenizer {Tokenizer.from_preset(source)('the cat')}"
    assert lines[3] == "presetforge.BertBackbone BertBackbone"
    assert len(list((tmp_path / "c").iterdir())) == 1  # one conversion, shared by the tokenizer and the backbone


def test_checkpoint_on_the_hub_converts_on_load(standin_hub, tmp_path):
    source = make_bert(tmp_path / "hf", seed=5)
    commit = hf.upload(source, "upstream/tiny-bert", "a raw checkpoint")
    convert(source, tmp_path / "explicit")
    x = inputs("bert")
    loaded = Backbone.from_preset(f"hf://upstream/tiny-bert@{commit}")
    for a, b in zip(outputs(loaded, x), outputs(Backbone.from_preset(tmp_path / "explicit"), x)):
        np.testing.assert_array_equal(a, b)


def test_convert_cli_takes_an_hf_handle_and_records_its_commit(standin_hub, tmp_path):
    from click.testing import CliRunner

    from presetforge import preset
    from presetforge.cli import main

    source = make_bert(tmp_path / "hf", seed=6, tokenizer=True)
    commit = hf.upload(source, "upstream/tiny-bert", "a raw checkpoint")
    result = CliRunner().invoke(main, ["convert", "hf://upstream/tiny-bert", "-o", str(tmp_path / "preset")])
    assert result.exit_code == 0, result.output
    provenance = preset.read_json(tmp_path / "preset", "metadata.json")["source"]
    assert (provenance["repo_id"], provenance["revision"]) == ("upstream/tiny-bert", commit)
    assert provenance["files"]["model.safetensors"] == preset.sha256_file(source / "model.safetensors")
    assert provenance["files"]["vocab.txt"] == preset.sha256_file(source / "vocab.txt")


# One tiny checkpoint per family the converters know (beyond BERT, above), as a user would name it on the Hub.
FAMILY_CONFIGS = {
    "llama": {},
    "mistral": dict(sliding_window=8),
    "qwen2": {},
    "qwen3": dict(head_dim=8),
    "gemma": dict(head_dim=8),
    "gemma2": dict(head_dim=8, sliding_window=8),
    "gemma3_text": dict(head_dim=8, sliding_window=8),
    "phi3": dict(pad_token_id=0, bos_token_id=1, eos_token_id=2),
}
_DECODER = dict(vocab_size=64, hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=1, max_position_embeddings=32)


@pytest.mark.parametrize("model_type", FAMILY_CONFIGS)
def test_every_decoder_family_converts_on_load_from_the_hub(standin_hub, tmp_path, model_type):
    source = make_causal_lm(tmp_path / "hf", model_type, **{**_DECODER, **FAMILY_CONFIGS[model_type]})
    commit = hf.upload(source, f"upstream/tiny-{model_type.replace('_', '-')}", "a raw checkpoint")
    convert(source, tmp_path / "explicit")
    x = {k: v for k, v in inputs("gpt2", vocabulary_size=64).items()}
    loaded = Backbone.from_preset(f"hf://upstream/tiny-{model_type.replace('_', '-')}@{commit}")
    assert type(loaded).__name__ == type(Backbone.from_preset(tmp_path / "explicit")).__name__
    for a, b in zip(outputs(loaded, x), outputs(Backbone.from_preset(tmp_path / "explicit"), x)):
        np.testing.assert_array_equal(a, b)
