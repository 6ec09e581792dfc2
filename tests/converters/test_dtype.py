"""Target dtypes: variables, stored values and reloaded policy follow ``dtype``; low-precision sources read exactly."""

import json

import h5py
import keras
import ml_dtypes
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from presetforge import Backbone
from presetforge.converters import convert
from presetforge.errors import ConversionError
from tests.checkpoints import make_bert, make_gpt2
from tests.converters.helpers import parity_errors


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_presets_load_as_that_dtype(tmp_path, dtype):
    source = make_bert(tmp_path / "hf")
    result = convert(source, tmp_path / "preset", dtype=dtype)
    assert result.dtype == dtype
    backbone = Backbone.from_preset(tmp_path / "preset")
    assert backbone.dtype_policy.name == dtype
    assert {v.dtype for v in backbone.weights} == {dtype}
    assert json.loads((tmp_path / "preset" / "metadata.json").read_text())["dtype"] == dtype
    # Rounded exactly as torch rounds float32 (round to nearest even), transposed like float32.
    upstream = load_file(source / "model.safetensors")["encoder.layer.0.attention.self.query.weight"]
    expected = upstream.to(getattr(torch, dtype)).float().numpy().T
    kernel = backbone.get_layer("transformer_layer_0").self_attention.query.kernel
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(keras.ops.cast(kernel, "float32")), expected)
    assert max(parity_errors(tmp_path / "preset", source).values()) < 0.1


def test_bfloat16_is_stored_as_keras_stores_it(tmp_path):
    convert(make_gpt2(tmp_path / "hf"), tmp_path / "preset", dtype="bfloat16")
    with h5py.File(tmp_path / "preset" / "model.weights.h5") as f:
        dataset = f["layers/reversible_embedding/vars/0"]
        assert dataset.attrs["dtype"] == "bfloat16" and dataset.dtype.itemsize == 2


def test_bfloat16_source_converts_exactly_to_float32(tmp_path):
    source = make_gpt2(tmp_path / "hf")
    from transformers import GPT2Model

    GPT2Model.from_pretrained(source).to(torch.bfloat16).save_pretrained(tmp_path / "hf16")
    convert(tmp_path / "hf16", tmp_path / "preset")
    upstream = load_file(tmp_path / "hf16" / "model.safetensors")["h.1.mlp.c_proj.weight"]
    assert upstream.dtype == torch.bfloat16
    backbone = Backbone.from_preset(tmp_path / "preset")
    kernel = keras.ops.convert_to_numpy(backbone.get_layer("transformer_layer_1").feedforward_output.kernel)
    assert kernel.dtype == np.float32
    np.testing.assert_array_equal(kernel, upstream.float().numpy())
    assert kernel.astype(ml_dtypes.bfloat16).astype(np.float32).tobytes() == kernel.tobytes()


def test_unknown_dtype_is_refused(tmp_path):
    with pytest.raises(ConversionError, match="float64"):
        convert(make_gpt2(tmp_path / "hf"), tmp_path / "preset", dtype="float64")
    assert not (tmp_path / "preset").exists()
