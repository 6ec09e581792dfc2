"""Dispatch by ``model_type`` through the registry, and the provenance a converted preset carries."""

import json

import pytest

from presetforge import preset
from presetforge.converters import Converter, convert, get_converter, model_types, register
from presetforge.converters.bert import BertConverter
from presetforge.converters.gpt2 import GPT2Converter
from presetforge.errors import ConversionError, PresetforgeError
from presetforge.version import __version__
from tests.checkpoints import make_bert, make_gpt2, reference


def test_registry_dispatches_by_model_type():
    assert {"gpt2", "bert"} <= set(model_types())
    assert isinstance(get_converter("gpt2"), GPT2Converter)
    assert isinstance(get_converter("bert"), BertConverter)


@pytest.mark.parametrize("model_type", ["mamba", None, ["gpt2"]])
def test_unknown_model_type_is_a_conversion_error(model_type):
    with pytest.raises(ConversionError, match="no converter for model_type") as info:
        get_converter(model_type)
    assert isinstance(info.value, PresetforgeError)


def test_unknown_model_type_in_checkpoint_is_refused(tmp_path):
    source = make_gpt2(tmp_path / "hf")
    config = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps({**config, "model_type": "gpt_neox"}))
    with pytest.raises(ConversionError, match="'gpt_neox'.*presetforge converts .*gpt2"):
        convert(source, tmp_path / "preset")
    assert not (tmp_path / "preset").exists()


def test_registering_a_model_type_twice_is_refused():
    with pytest.raises(ValueError, match="already registered"):

        @register("gpt2")
        class Again(Converter):
            pass


@pytest.mark.parametrize("kind, make", [("gpt2", make_gpt2), ("bert", make_bert)])
def test_metadata_records_provenance(tmp_path, kind, make):
    source = make(tmp_path / "hf")
    calls = []
    result = convert(
        source,
        tmp_path / "preset",
        progress=lambda done, total, name: calls.append((done, total, name)),
        source_repo="org/tiny",
        revision="0123abc",
    )
    metadata = json.loads((tmp_path / "preset" / "metadata.json").read_text())
    assert result.output == (tmp_path / "preset").absolute()
    assert metadata["source"]["repo_id"] == "org/tiny" and metadata["source"]["revision"] == "0123abc"
    assert metadata["source"]["files"] == {
        name: preset.sha256_file(source / name) for name in ("config.json", "model.safetensors")
    }
    assert metadata["converter"] == {"name": kind, "version": 1}
    assert metadata["presetforge_version"] == __version__
    assert metadata["keras_version"] and "transformers_version" not in metadata
    assert metadata["dtype"] == "float32" and metadata["tensor_count"] == result.tensor_count
    # Same parameter count as the upstream model.
    assert metadata["parameter_count"] == result.parameter_count == reference(source).num_parameters()
    assert [c[0] for c in calls] == list(range(1, result.tensor_count + 1))
    assert {c[1] for c in calls} == {result.tensor_count}
    assert len({c[2] for c in calls}) == result.tensor_count
    preset.verify(tmp_path / "preset")
    assert json.loads((tmp_path / "preset" / "config.json").read_text())["registered_name"].startswith("presetforge>")
