"""Damaged and tampered presets: named in one line, never loaded, never published."""

import json
import os
import shutil

import pytest

from presetforge import Backbone, IntegrityError, preset
from presetforge.converters import convert
from tests.checkpoints import make_gpt2
from tests.faults.conftest import assert_one_clear_line, cli, tree
from tests.faults.table import Fault
from tests.verified import verified_preset

AREA = "preset"


def _flip_byte(root):
    path = root / preset.WEIGHTS_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _rewrite_manifest(root):
    preset.write_json(root / preset.MANIFEST_FILE, preset.build_manifest(root))


def _tampered_weights(root):
    import h5py

    with h5py.File(root / preset.WEIGHTS_FILE, "r+") as f:
        dataset = f["layers/position_embedding/vars/0"]
        dataset[31, 0] = 0.0
    _rewrite_manifest(root)


def _tampered_config(root):
    config = json.loads((root / preset.CONFIG_FILE).read_text())
    config["config"]["layer_norm_epsilon"] = 0.5
    (root / preset.CONFIG_FILE).write_text(json.dumps(config))
    _rewrite_manifest(root)


FAULTS = (
    Fault("flipped-byte", AREA, "one bit of the weights file flipped", "refused on load, check and publish, "
          "naming the file", r"integrity check failed for 'model\.weights\.h5': sha256 does not match"),
    Fault("missing-file", AREA, "a file the manifest lists is gone", "refused, naming the file",
          r"integrity check failed for 'tokenizer\.json': listed in the manifest but missing"),
    Fault("extra-file", AREA, "a file the manifest does not list", "refused, naming the file",
          r"integrity check failed for 'notes\.txt': present but not listed in the manifest"),
    Fault("tampered-weights", AREA, "one weight changed and the manifest rewritten to match",
          "loads, but is no longer verified: publish refuses; check exits 1 naming the variable and index",
          r"'position_embedding/embeddings' differs at index \(31, 0\)"),
    Fault("symlinked-file", AREA, "a file replaced by a symbolic link to an identical file outside the preset",
          "refused on load, check and publish: no link is followed, nothing outside is read or sent",
          r"integrity check failed for 'tokenizer\.json': is a symbolic link"),
    Fault("symlinked-directory", AREA, "the `assets` directory replaced by a link to an identical copy outside",
          "refused on load, check and publish", r"integrity check failed for 'assets': is a symbolic link"),
    Fault("hard-linked-file", AREA, "a file hard-linked to one outside the preset, then changed from outside",
          "a hard link is the regular file it is: its bytes are verified like any other, so the change is named",
          r"integrity check failed for 'tokenizer\.json': (sha256|size)"),
    Fault("lora-other-base", AREA, "a LoRA file trained on a base of the same shape but other weights",
          "LoraError naming both weight digests; nothing loaded (unless strict=False)",
          r"does not fit this backbone's base weights"),
    Fault("lora-other-model", AREA, "a LoRA file of another architecture", "LoraError naming both classes; nothing loaded",
          r"holds LoRA weights for a BertBackbone, not a GPT2Backbone"),
    Fault("tampered-config", AREA, "`config.json` edited and the manifest rewritten to match",
          "no longer verified: publish refuses; check exits 1 naming the argument",
          r"config argument 'layer_norm_epsilon' is 0\.5"),
)

def _symlinked(name):
    def damage(root):
        outside = root.parent / f"outside-{name}"
        shutil.move(root / name, outside)
        (root / name).symlink_to(outside)

    return damage


def _hard_linked_then_changed(root):
    outside = root.parent / "outside.json"
    os.link(root / preset.TOKENIZER_CONFIG_FILE, outside)
    Backbone.from_preset(root)  # identical bytes through a hard link: a regular file, verified, loaded
    with open(outside, "r+b") as f:  # the same inode, written from outside
        f.seek(0)
        f.write(b" ")


DAMAGE = {
    "flipped-byte": _flip_byte,
    "symlinked-file": _symlinked(preset.TOKENIZER_CONFIG_FILE),
    "symlinked-directory": _symlinked("assets"),
    "hard-linked-file": _hard_linked_then_changed,
    "missing-file": lambda root: (root / preset.TOKENIZER_CONFIG_FILE).unlink(),
    "extra-file": lambda root: (root / "notes.txt").write_text("hello"),
}
TAMPER = {"tampered-weights": _tampered_weights, "tampered-config": _tampered_config}


@pytest.fixture(scope="module")
def verified(tmp_path_factory):
    return verified_preset(tmp_path_factory.mktemp("verified"))


@pytest.mark.parametrize("fault", [f for f in FAULTS if f.id in DAMAGE], ids=lambda f: f.id)
def test_damaged_preset(fault, verified, tmp_path, no_network):
    source, master = verified
    damaged = shutil.copytree(master, tmp_path / "preset")
    DAMAGE[fault.id](damaged)
    before = tree(damaged)
    with pytest.raises(IntegrityError, match=fault.message):
        Backbone.from_preset(damaged)
    assert_one_clear_line(cli("check", damaged, "--reference", source), fault.message)
    assert_one_clear_line(cli("publish", damaged, "--to", "hf://standin/damaged"), fault.message)
    registry = tmp_path / "registry"
    assert_one_clear_line(cli("publish", damaged, "--to", registry), fault.message)
    assert tree(damaged) == before and not registry.exists()


@pytest.mark.parametrize("fault", [f for f in FAULTS if f.id in TAMPER], ids=lambda f: f.id)
def test_tampered_preset(fault, verified, tmp_path, no_network):
    source, master = verified
    tampered = shutil.copytree(master, tmp_path / "preset")
    TAMPER[fault.id](tampered)
    assert_one_clear_line(cli("publish", tampered, "--to", "hf://standin/tampered"), "made for other files")
    result = cli("check", tampered, "--reference", source)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert any(line.startswith("PARITY FAILED") for line in result.stdout.splitlines()), result.stdout
    import re

    assert re.search(fault.message, " ".join(result.stdout.split())), result.stdout
    assert_one_clear_line(cli("publish", tampered, "--to", "hf://standin/tampered"), "its parity check failed")


@pytest.mark.parametrize("fault", [f for f in FAULTS if f.id.startswith("lora-")], ids=lambda f: f.id)
def test_foreign_lora_file(fault, verified, tmp_path):
    import numpy as np

    from presetforge import LoraError
    from tests.checkpoints import make_bert

    _, master = verified
    if fault.id == "lora-other-base":
        other = make_gpt2(tmp_path / "hf", tokenizer=True, seed=7)
        convert(other, tmp_path / "other")
    else:
        convert(make_bert(tmp_path / "hf"), tmp_path / "other")
    donor = Backbone.from_preset(tmp_path / "other")
    donor.enable_lora(2)
    donor.save_lora_weights(tmp_path / "adapter.lora.h5")

    target = Backbone.from_preset(master)
    before = [np.array(v.numpy()) for v in target.weights]
    with pytest.raises(LoraError, match=fault.message):
        target.load_lora_weights(tmp_path / "adapter.lora.h5")
    assert getattr(target, "_lora_rank", None) is None
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, target.weights))
