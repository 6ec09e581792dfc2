"""What the decoder families' variant tests share: the gate's bar, and the older config layout.

``passes_gate`` is ``assert_gate_passes`` (every stage within 1e-5 of
transformers, logits within 1e-4 with the same top-1) that also proves every
block was compared and the full-length probe ran.
``older_layout`` rewrites a config.json as checkpoints saved before
transformers 5 carry it: ``rope_theta`` + ``rope_scaling``, no ``layer_types``.
``ROPE_VARIANTS`` are the rope types transformers' Llama-shaped families accept,
sized for checkpoints of ``head_dim`` 8 and 48 positions.
"""

import json

from tests.converters.helpers import assert_gate_passes
from tests.converters.test_llama import _legacy_layout

ROPE_VARIANTS = {
    "theta-1m": dict(rope_parameters={"rope_type": "default", "rope_theta": 1e6}),
    "linear-rope": dict(rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}),
    "dynamic-rope": dict(rope_parameters={"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}),
    "llama3-rope": dict(rope_parameters={
        "rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 16,
    }),
    "yarn-rope": dict(rope_parameters={
        "rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 16,
    }),
    # Original context 32: the padded batch (24 long) takes the short factors, the full-length probe the long.
    "longrope": dict(rope_parameters={
        "rope_type": "longrope", "rope_theta": 10000.0, "short_factor": [1.0, 1.2, 1.5, 2.0],
        "long_factor": [1.5, 2.5, 4.0, 6.0], "original_max_position_embeddings": 32,
    }),
}


def rewrite_config(source, edit):
    """Replace the checkpoint's config.json with ``edit(config)``."""
    path = source / "config.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    return source


def older_layout(source, keep_layer_types=False):
    """The rope as ``rope_theta`` + ``rope_scaling`` and, unless kept, no ``layer_types`` (they are then
    derived from ``use_sliding_window`` and ``max_window_layers``, as transformers does for such configs)."""
    _legacy_layout(source)
    if keep_layer_types:
        return source
    return rewrite_config(source, lambda config: {k: v for k, v in config.items() if k != "layer_types"})


def passes_gate(source, preset_dir, num_layers, length):
    """Convert ``source`` and assert the whole gate passes on every block and a ``length``-token probe."""
    report = assert_gate_passes(source, preset_dir)
    assert [s.name for s in report.stages] == ["embeddings", *(f"layer_{i}" for i in range(num_layers)), "final", "logits"]
    assert report.inputs["probes"]["full length"]["lengths"] == [length]
    return report
