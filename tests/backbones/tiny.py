"""Tiny backbones and inputs shared by the backbone tests (deterministic, with padding)."""

import keras
import numpy as np

from presetforge import BertBackbone, GPT2Backbone

TINY = dict(vocabulary_size=97, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=24, max_sequence_length=32)


def make(kind, **overrides):
    keras.utils.set_random_seed(0)
    cls = {"gpt2": GPT2Backbone, "bert": BertBackbone}[kind]
    return cls(**{**TINY, **overrides})


def inputs(kind, vocabulary_size=TINY["vocabulary_size"], batch=3, seq=7, seed=1):
    """Deterministic token ids with right padding (rows 1 and 2 padded), as numpy int32 arrays."""
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(1, vocabulary_size, size=(batch, seq)).astype("int32")
    padding_mask = np.ones((batch, seq), dtype="int32")
    padding_mask[1, 4:] = 0
    padding_mask[2, 2:] = 0
    token_ids[padding_mask == 0] = 0
    x = {"token_ids": token_ids, "padding_mask": padding_mask}
    if kind == "bert":
        x["segment_ids"] = (np.arange(seq)[None, :] >= seq // 2).astype("int32").repeat(batch, 0)
    return x


def outputs(backbone, x):
    """The backbone's outputs as a flat list of numpy arrays, whatever their structure."""
    return [keras.ops.convert_to_numpy(t) for t in keras.tree.flatten(backbone(x))]
