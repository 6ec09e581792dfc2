"""LoRA for backbones: enable it on named projections, save and load it by stable layer path.

Weights are keyed by the path of names from the backbone down
(``transformer_layer_0/self_attention/query``), never by layer index, so a file
fits only a backbone with the same layers and shapes, and says so when it does not.
A file also records the weights digest of the preset its base was loaded from
(``preset.weights_digest``): factors trained on one base mean nothing on another of the
same shape, so loading them elsewhere is refused unless the caller says ``strict=False``.
"""

import json
import os
from pathlib import Path

import h5py
import keras
import numpy as np

from presetforge.errors import LoraError

FORMAT = "presetforge-lora"
FORMAT_VERSION = 1
DEFAULT_TARGETS = ("query", "value")
_VARIABLES = ("lora_kernel_a", "lora_kernel_b")
BASE_ATTRIBUTE = "base_weights_sha256"


def named_layers(layer, prefix=""):
    """Every nested layer below ``layer`` with its slash-joined path of names."""
    for child in layer._flatten_layers(include_self=False, recursive=False):
        path = f"{prefix}{child.name}"
        yield path, child
        yield from named_layers(child, prefix=f"{path}/")


def _targets(backbone, target_names):
    found = {path: layer for path, layer in named_layers(backbone) if layer.name in target_names}
    if not found:
        raise LoraError(f"no layer of {type(backbone).__name__} is named any of {sorted(target_names)}")
    return found


def enable(backbone, rank, target_names=None):
    """Freeze all weights, then give each layer named in ``target_names`` trainable LoRA factors."""
    if getattr(backbone, "_lora_rank", None) is not None:
        raise LoraError(f"LoRA is already enabled on this backbone (rank {backbone._lora_rank})")
    if not isinstance(rank, int) or rank < 1:
        raise LoraError(f"LoRA rank must be a positive integer, got {rank!r}")
    target_names = tuple(target_names or DEFAULT_TARGETS)
    targets = _targets(backbone, target_names)
    backbone.trainable = True
    for _, layer in named_layers(backbone):
        layer.trainable = False
    for layer in targets.values():
        layer.trainable = True
        layer.enable_lora(rank)
        for variable in layer.trainable_weights:
            variable.trainable = variable.name in _VARIABLES
    backbone._lora_rank = rank
    backbone._lora_target_names = target_names


def _require_enabled(backbone):
    if getattr(backbone, "_lora_rank", None) is None:
        raise LoraError("LoRA is not enabled on this backbone; call enable_lora(rank) first")


def save(backbone, path):
    """Write rank, target names, the base's weights digest and every LoRA factor to an H5 file
    (atomically)."""
    _require_enabled(backbone)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["backbone_class"] = type(backbone).__name__
        f.attrs["rank"] = backbone._lora_rank
        f.attrs["target_names"] = json.dumps(list(backbone._lora_target_names))
        base = getattr(backbone, "_base_weights_sha256", None)
        if base is not None:
            f.attrs[BASE_ATTRIBUTE] = base
        for layer_path, layer in _targets(backbone, backbone._lora_target_names).items():
            group = f.create_group(layer_path)
            for name in _VARIABLES:
                group.create_dataset(name, data=keras.ops.convert_to_numpy(getattr(layer, name)))
    os.replace(tmp, path)


def _expected_shapes(backbone, target_names, rank):
    """Shape of each LoRA factor this backbone would have, without enabling anything."""
    shapes = {}
    for layer_path, layer in _targets(backbone, target_names).items():
        fan_in, fan_out = layer.kernel.shape
        shapes[f"{layer_path}/lora_kernel_a"] = (fan_in, rank)
        shapes[f"{layer_path}/lora_kernel_b"] = (rank, fan_out)
    return shapes


def load(backbone, path, strict=True):
    """Load a file written by ``save``; every check passes before any weight is touched.

    ``strict``: refuse a file unless it records the same base weights digest as this backbone
    (both must be known); ``False`` loads factors trained on another base of the same shape.
    """
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as e:
        raise LoraError(f"cannot read LoRA weights from {path}: {e}") from None
    with f:
        if f.attrs.get("format") != FORMAT:
            raise LoraError(f"{path} is not a presetforge LoRA weights file")
        saved_class = f.attrs["backbone_class"]
        if saved_class != type(backbone).__name__:
            raise LoraError(f"{path} holds LoRA weights for a {saved_class}, not a {type(backbone).__name__}")
        rank = int(f.attrs["rank"])
        target_names = tuple(json.loads(f.attrs["target_names"]))
        recorded_base = f.attrs.get(BASE_ATTRIBUTE)
        current = getattr(backbone, "_lora_rank", None)
        if current is not None and (current, backbone._lora_target_names) != (rank, target_names):
            raise LoraError(
                f"{path} has rank {rank} on {list(target_names)}; this backbone has LoRA rank "
                f"{current} on {list(backbone._lora_target_names)}"
            )
        expected = _expected_shapes(backbone, target_names, rank)
        saved = {}
        f.visititems(lambda name, obj: saved.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    for name in sorted(set(expected) - set(saved)):
        raise LoraError(f"{path} has no LoRA weights for '{name}'")
    for name in sorted(set(saved) - set(expected)):
        raise LoraError(f"{path} has LoRA weights for '{name}', which this backbone does not have")
    for name, shape in expected.items():
        if tuple(saved[name].shape) != shape:
            raise LoraError(f"LoRA weights '{name}' in {path} have shape {saved[name].shape}; this backbone needs {shape}")
    problem = strict and _base_problem(recorded_base, getattr(backbone, "_base_weights_sha256", None))
    if problem:
        raise LoraError(f"{path} does not fit this backbone's base weights: {problem}; strict=False loads it anyway")
    if current is None:
        enable(backbone, rank, target_names)
    for layer_path, layer in _targets(backbone, target_names).items():
        for var in _VARIABLES:
            getattr(layer, var).assign(np.asarray(saved[f"{layer_path}/{var}"]))


def _base_problem(recorded, ours):
    """Why factors trained on base weights ``recorded`` may not fit ``ours`` (digests), or ``None``."""
    if recorded is None:
        return "it records no base weights digest (its backbone was not saved to or loaded from a preset)"
    if ours is None:
        return "this backbone's weights digest is unknown (it was not saved to or loaded from a preset)"
    if recorded != ours:
        return f"it was trained on base weights sha256 {recorded[:12]}, this backbone has {ours[:12]}"
    return None
