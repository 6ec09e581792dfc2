"""Every checkpoint layout reads to the same preset: single and sharded safetensors, .bin and sharded .bin."""

import pytest

from presetforge import preset
from presetforge.converters import convert
from presetforge.errors import ConversionError
from tests.checkpoints import FORMATS, make_gpt2
from tests.converters.helpers import assert_parity


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    out = {}
    for fmt in FORMATS:
        source = make_gpt2(root / f"hf-{fmt}", fmt=fmt)
        convert(source, root / f"preset-{fmt}")
        out[fmt] = (source, root / f"preset-{fmt}")
    return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_format_converts_with_parity(converted, fmt):
    source, path = converted[fmt]
    assert_parity(path, source)


def test_all_formats_give_identical_weights(converted):
    digests = {fmt: preset.sha256_file(path / preset.WEIGHTS_FILE) for fmt, (_, path) in converted.items()}
    assert len(set(digests.values())) == 1, digests


def test_sharded_provenance_hashes_every_file_read(converted):
    import json

    source, path = converted["sharded"]
    files = json.loads((path / "metadata.json").read_text())["source"]["files"]
    shards = sorted(p.name for p in source.glob("model-*.safetensors"))
    assert len(shards) > 1
    assert sorted(files) == sorted(["config.json", "model.safetensors.index.json", *shards])
    assert all(files[name] == preset.sha256_file(source / name) for name in files)


def test_directory_without_weights_is_refused(tmp_path):
    source = make_gpt2(tmp_path / "hf")
    (source / "model.safetensors").unlink()
    with pytest.raises(ConversionError, match="holds no weights"):
        convert(source, tmp_path / "preset")


def test_directory_without_config_is_refused(tmp_path):
    source = make_gpt2(tmp_path / "hf")
    (source / "config.json").unlink()
    with pytest.raises(ConversionError, match="config.json"):
        convert(source, tmp_path / "preset")


def test_bin_is_never_unpickled_beyond_weights(tmp_path, capfd):
    import torch

    source = make_gpt2(tmp_path / "hf")
    (source / "model.safetensors").unlink()

    class Boom:
        def __reduce__(self):
            return (print, ("unpickled!",))

    torch.save({"wte.weight": torch.zeros(2), "evil": Boom()}, source / "pytorch_model.bin")
    with pytest.raises(ConversionError, match=r"refusing to unpickle .*pytorch_model.bin: it asks for print,"):
        convert(source, tmp_path / "preset")
    assert "unpickled!" not in capfd.readouterr().out


def test_large_models_are_written_sharded_like_save_to_preset(tmp_path):
    source = make_gpt2(tmp_path / "hf")
    convert(source, tmp_path / "preset", max_shard_size_gb=40_000 / 1024**3)
    names = preset.weights_files(tmp_path / "preset")
    assert preset.SHARDED_WEIGHTS_FILE in names and preset.WEIGHTS_FILE not in names
    assert len(names) > 3
    assert_parity(tmp_path / "preset", source)
