"""Broken and hostile upstream checkpoints: one clear line, nothing written, the earlier preset untouched."""

import json
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file

from presetforge import Backbone, ConversionError, preset
from presetforge.converters import convert
from tests.checkpoints import make_gpt2, rewrite_tensors
from tests.faults.conftest import assert_one_clear_line, cli, mounted_tmpfs, tree
from tests.faults.table import Fault

AREA = "upstream checkpoint"


def _edit_config(source, **changes):
    config = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps({**config, **changes}))


def _truncated(source):
    path = source / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _corrupt_header(source):
    path = source / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[8:20] = b"not a header"
    path.write_bytes(bytes(data))


def _missing_shard(source):
    source.joinpath("model.safetensors").rename(source / "model-00001-of-00002.safetensors")
    index = {"metadata": {}, "weight_map": {name: "model-00001-of-00002.safetensors" for name in
                                            load_file(source / "model-00001-of-00002.safetensors")}}
    index["weight_map"]["ln_f.bias"] = "model-00002-of-00002.safetensors"
    (source / "model.safetensors.index.json").write_text(json.dumps(index))


def _int_tensor(source):
    rewrite_tensors(source, lambda t: {**t, "wpe.weight": t["wpe.weight"].to(torch.int32)})


def _empty(source):
    shutil.rmtree(source)
    source.mkdir()


def _file(source):
    shutil.rmtree(source)
    source.write_text("not a directory")


class _Evil:
    """Unpickled unsafely, this writes the canary file: proof that code ran."""

    canary = None

    def __reduce__(self):
        return (os.system, (f"touch {self.canary}",))


def _pickle_runs_code(source):
    (source / "model.safetensors").unlink()
    _Evil.canary = source.parent / "CANARY"
    torch.save({"wte.weight": torch.zeros(2), "payload": _Evil()}, source / "pytorch_model.bin")


FAULTS = (
    Fault("truncated-safetensors", AREA, "`model.safetensors` cut in half", "exit 2, names the file",
          r"cannot read .*model\.safetensors"),
    Fault("corrupt-safetensors", AREA, "safetensors header overwritten", "exit 2, names the file",
          r"cannot read .*model\.safetensors"),
    Fault("wrong-shape", AREA, "`n_positions` in config.json disagrees with `wpe.weight`",
          "exit 2, names the tensor and both shapes", r"tensor 'wpe\.weight' \(32, 32\) gives .* needs \(16, 32\)"),
    Fault("wrong-dtype", AREA, "an int32 weight tensor", "exit 2, names the tensor and dtype",
          r"tensor 'wpe\.weight' is int32; only float checkpoints"),
    Fault("missing-tensor", AREA, "a tensor the architecture needs is absent", "exit 2, names the tensor",
          r"'h\.1\.mlp\.c_fc\.bias' is missing"),
    Fault("unexpected-tensor", AREA, "a tensor no converter rule uses", "exit 2, names the tensor",
          r"'h\.0\.attn\.rotary\.inv_freq' is neither converted nor deliberately ignored"),
    Fault("bad-config", AREA, "`config.json` is not JSON", "exit 2, names the file", r"config\.json is not valid JSON"),
    Fault("missing-config", AREA, "no `config.json`", "exit 2", r"is not a Hugging Face checkpoint directory"),
    Fault("unknown-model-type", AREA, "`model_type` presetforge has no converter for",
          "exit 2, lists the known types", r"no converter for model_type 'mamba'; presetforge converts"),
    Fault("unimplemented-flag", AREA, "a numerics flag the backbone does not implement",
          "exit 2, names the flag and value", r"scale_attn_by_inverse_layer_idx=True"),
    Fault("unknown-config-key", AREA, "a `config.json` key the converter does not know", "exit 2, names the key",
          r"gpt2 config key 'attn_logit_temperature' is not understood by the gpt2 converter"),
    Fault("missing-shard", AREA, "the sharded index names a shard that is not there", "exit 2, names the shard",
          r"names shard 'model-00002-of-00002\.safetensors'"),
    Fault("empty-directory", AREA, "an empty directory", "exit 2", r"is not a Hugging Face checkpoint directory"),
    Fault("file-not-directory", AREA, "a file where the checkpoint directory should be", "exit 2",
          r"is not a Hugging Face checkpoint directory"),
    Fault("pickle-runs-code", AREA, "`pytorch_model.bin` whose pickle would run code",
          "exit 2 naming the global it asked for; never unpickled (the canary file is never written)",
          r"refusing to unpickle .*pytorch_model\.bin: it asks for posix\.system"),
    Fault("unwritable-output", AREA, "the output lies on a read-only file system", "exit 2, the earlier preset kept",
          r"Read-only file system"),
    Fault("disk-full", AREA, "the disk fills up mid-write (a small tmpfs)",
          "exit 2, no staging left, the earlier preset kept", r"No space left on device"),
)

BREAK = {
    "truncated-safetensors": _truncated,
    "corrupt-safetensors": _corrupt_header,
    "wrong-shape": lambda s: _edit_config(s, n_positions=16),
    "wrong-dtype": _int_tensor,
    "missing-tensor": lambda s: rewrite_tensors(s, lambda t: {k: v for k, v in t.items() if k != "h.1.mlp.c_fc.bias"}),
    "unexpected-tensor": lambda s: rewrite_tensors(s, lambda t: {**t, "h.0.attn.rotary.inv_freq": torch.ones(4)}),
    "bad-config": lambda s: (s / "config.json").write_text("{not json"),
    "missing-config": lambda s: (s / "config.json").unlink(),
    "unknown-model-type": lambda s: _edit_config(s, model_type="mamba"),
    "unimplemented-flag": lambda s: _edit_config(s, scale_attn_by_inverse_layer_idx=True),
    "unknown-config-key": lambda s: _edit_config(s, attn_logit_temperature=0.5),
    "missing-shard": _missing_shard,
    "empty-directory": _empty,
    "file-not-directory": _file,
    "pickle-runs-code": _pickle_runs_code,
}
ON_THE_OUTPUT = ("unwritable-output", "disk-full")


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A good checkpoint and the preset converted from it, to copy from."""
    root = tmp_path_factory.mktemp("good")
    source = make_gpt2(root / "hf")
    convert(source, root / "preset")
    return source, root / "preset"


def _leftovers(output):
    return sorted(p.name for p in output.parent.iterdir() if p.name.startswith(f".{output.name}."))


@pytest.mark.parametrize("fault", [f for f in FAULTS if f.id not in ON_THE_OUTPUT], ids=lambda f: f.id)
def test_broken_checkpoint(fault, good, tmp_path, no_network):
    source = shutil.copytree(good[0], tmp_path / "hf")
    BREAK[fault.id](source)
    output = shutil.copytree(good[1], tmp_path / "out" / "preset")  # an earlier good preset at the target
    before = tree(output)

    assert_one_clear_line(cli("convert", source, "-o", output), fault.message)
    assert tree(output) == before and _leftovers(output) == []
    with pytest.raises(ConversionError):
        convert(source, tmp_path / "api")
    assert not (tmp_path / "api").exists() and _leftovers(tmp_path / "api") == []
    if fault.id == "pickle-runs-code":  # loading it as a raw checkpoint goes through the same refusal
        with pytest.raises(ConversionError, match=fault.message):
            Backbone.from_preset(source)
        assert not (tmp_path / "CANARY").exists()


@pytest.mark.parametrize("fault", [f for f in FAULTS if f.id in ON_THE_OUTPUT], ids=lambda f: f.id)
def test_output_that_cannot_be_written(fault, good, tmp_path):
    source, master = good
    size = sum(p.stat().st_size for p in master.rglob("*") if p.is_file())
    read_only = fault.id == "unwritable-output"
    mount = tmp_path / "mnt"
    # Room for the earlier preset and a little more, never for a second copy beside it.
    with mounted_tmpfs(mount, size=int(size * 1.5) + 65536):
        output = shutil.copytree(master, mount / "preset")
        if read_only:
            subprocess_remount_read_only(mount)
        before = tree(output)
        assert_one_clear_line(cli("convert", source, "-o", output, "--no-check"), fault.message)
        assert tree(output) == before and _leftovers(output) == []
        assert preset.verify(output) == preset.verify(master)


def subprocess_remount_read_only(mount):
    import subprocess

    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
