"""The check streams: its peak memory grows with a block, not with the model.

A random Llama-shaped checkpoint (bfloat16; 2 GB in float32: 80 blocks of 25 MB)
is converted to a float32 preset and checked, with short probes, in a child process (``tests/peak_memory.py``). Its peak
RSS must stay under the import baseline plus the budget the check promises:
the largest block of both sides in float32, the largest tensor, the
activations, and 512 MiB; the model is over three times that budget. The check
must pass, and fail, at that very block, when one middle block's weights are
scaled by 1.01.
"""

import json

import numpy as np
import pytest

from tests.large_checkpoints import llama_config, llama_tensors, normal_values, write_safetensors
from tests.peak_memory import MiB, peak_rss_kib, run_measured

SHAPE = dict(num_hidden_layers=80, hidden_size=640, num_attention_heads=10, num_key_value_heads=5,
             intermediate_size=2560, vocab_size=2048, max_position_embeddings=16, rope_scaling=None,
             torch_dtype="bfloat16")
PROBE_LENGTHS = (16, 7)
PERTURBED_LAYER = 40

IMPORTS = (
    "import json\n"
    "import presetforge\n"
    "from presetforge.converters import convert\n"
    "from presetforge.checks import parity\n"
    "import transformers.models.llama.modeling_llama\n"
    "from tests.checks.test_parity_memory import scale_block\n"
)

CHECK = """
convert({hf!r}, {preset!r})
report = parity.check({preset!r}, {hf!r}, probe_lengths={lengths!r})
print(json.dumps(report.to_json()))
scale_block({preset!r}, {layer}, 1.01)
report = parity.check({preset!r}, {hf!r}, probe_lengths={lengths!r})
print(json.dumps(report.to_json()))
"""


def scale_block(root, layer, factor):
    """Multiply every weight of block ``layer`` of the preset at ``root`` by ``factor``, then rewrite
    the manifest as a careless edit would: only the check can tell."""
    import h5py

    from presetforge import preset
    from presetforge.backbones import weights
    from presetforge.backbones.backbone import backbone_class

    serialized = preset.read_json(root, preset.CONFIG_FILE)
    backbone = weights.deferred_variables(
        lambda: backbone_class(serialized, root).from_config(serialized["config"])
    )
    places = weights.layout(backbone).datasets
    (name,) = weights.weight_files(root)
    with h5py.File(f"{root}/{name}", "r+") as f:
        for variable in backbone.transformer_layers[layer].weights:
            dataset = f[places[variable.path].path]
            dataset[...] = dataset[()] * np.float32(factor)
    preset.write_json(f"{root}/{preset.MANIFEST_FILE}", preset.build_manifest(root))


def _budget(tensors, hidden, intermediate, vocab, positions):
    """The check's promise in bytes: the largest block of both sides in float32, plus the largest
    tensor, plus the activations (a generous 16 stage-sized arrays of the widest stage), plus 512 MiB."""
    blocks = {}
    for name, shape in tensors:
        if ".layers." in name:
            block = name.split(".layers.")[1].split(".")[0]
            blocks[block] = blocks.get(block, 0) + int(np.prod(shape)) * 4
    largest_tensor = max(int(np.prod(shape)) * 4 for _, shape in tensors)
    activations = 16 * positions * max(hidden, intermediate, vocab) * 4
    return 2 * max(blocks.values()) + largest_tensor + activations + 512 * MiB


@pytest.mark.slow
def test_check_memory_is_bounded_by_a_block_and_catches_a_one_percent_block(tmp_path):
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps(llama_config(**SHAPE)))
    tensors = llama_tensors(**SHAPE)
    total = 2 * write_safetensors(hf / "model.safetensors", tensors, normal_values(), dtype="bfloat16")
    budget = _budget(tensors, SHAPE["hidden_size"], SHAPE["intermediate_size"], SHAPE["vocab_size"],
                     SHAPE["max_position_embeddings"])
    assert total > 3 * budget, (total, budget)  # the model could not fit in the budget whole, in float32

    baseline = peak_rss_kib(IMPORTS)
    code = IMPORTS + CHECK.format(hf=str(hf), preset=str(tmp_path / "preset"), layer=PERTURBED_LAYER,
                                  lengths=PROBE_LENGTHS)
    (passed, perturbed), peak = run_measured(code, timeout=900)

    passed, perturbed = json.loads(passed), json.loads(perturbed)
    assert passed["passed"], passed["first_failure"]
    assert len(passed["stages"]) == SHAPE["num_hidden_layers"] + 3  # embeddings, every block, final, logits
    assert (peak - baseline) * 1024 < budget, (
        f"peak RSS {peak / 1024:.0f} MiB is {(peak - baseline) / 1024:.0f} MiB above the import baseline "
        f"{baseline / 1024:.0f} MiB; the budget is {budget / MiB:.0f} MiB for a {total / MiB:.0f} MiB model"
    )

    assert not perturbed["passed"]
    assert perturbed["weights"]["first_mismatch"]["variable"].startswith(f"transformer_layer_{PERTURBED_LAYER}/")
    failing = [s["name"] for s in perturbed["stages"] if not s["passed"]]
    assert failing == [f"layer_{PERTURBED_LAYER}"]  # each stage on the reference's input: only that block
    assert perturbed["first_failing_stage"] == f"layer_{PERTURBED_LAYER}"
