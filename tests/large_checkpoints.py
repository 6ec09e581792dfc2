"""Large random checkpoints of real model shapes, written a tensor at a time (memory: one tensor).

Shared by the streaming-memory tests and the benchmarks: the same state-dict
names and shapes transformers saves for GPT-2 and Llama, in its own order.
"""

import json

import ml_dtypes
import numpy as np

def gpt2_tensors(n_layer, n_embd, vocab_size=50257, n_positions=1024, **_):
    """GPT2Model's state dict as (name, shape), in transformers' own order."""
    tensors = [("wte.weight", (vocab_size, n_embd)), ("wpe.weight", (n_positions, n_embd))]
    for i in range(n_layer):
        h = f"h.{i}"
        tensors += [
            (f"{h}.ln_1.weight", (n_embd,)),
            (f"{h}.ln_1.bias", (n_embd,)),
            (f"{h}.attn.c_attn.weight", (n_embd, 3 * n_embd)),
            (f"{h}.attn.c_attn.bias", (3 * n_embd,)),
            (f"{h}.attn.c_proj.weight", (n_embd, n_embd)),
            (f"{h}.attn.c_proj.bias", (n_embd,)),
            (f"{h}.ln_2.weight", (n_embd,)),
            (f"{h}.ln_2.bias", (n_embd,)),
            (f"{h}.mlp.c_fc.weight", (n_embd, 4 * n_embd)),
            (f"{h}.mlp.c_fc.bias", (4 * n_embd,)),
            (f"{h}.mlp.c_proj.weight", (4 * n_embd, n_embd)),
            (f"{h}.mlp.c_proj.bias", (n_embd,)),
        ]
    return tensors + [("ln_f.weight", (n_embd,)), ("ln_f.bias", (n_embd,))]


def gpt2_config(n_layer, n_embd, n_head, vocab_size=50257, n_positions=1024, **_):
    """A GPT-2 ``config.json`` as transformers writes it (the fields the converters read)."""
    return {
        "architectures": ["GPT2Model"],
        "model_type": "gpt2",
        "activation_function": "gelu_new",
        "attn_pdrop": 0.1,
        "bos_token_id": 50256,
        "embd_pdrop": 0.1,
        "eos_token_id": 50256,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "n_ctx": n_positions,
        "n_embd": n_embd,
        "n_head": n_head,
        "n_inner": None,
        "n_layer": n_layer,
        "n_positions": n_positions,
        "reorder_and_upcast_attn": False,
        "resid_pdrop": 0.1,
        "scale_attn_by_inverse_layer_idx": False,
        "scale_attn_weights": True,
        "summary_activation": None,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "tie_word_embeddings": True,
        "use_cache": True,
        "vocab_size": vocab_size,
    }


def llama_tensors(num_hidden_layers, hidden_size, num_attention_heads, num_key_value_heads, intermediate_size,
                  vocab_size, tie_word_embeddings=True, **_):
    """LlamaForCausalLM's state dict as (name, shape), in transformers' own order (``lm_head`` when untied)."""
    head_dim = hidden_size // num_attention_heads
    kv = num_key_value_heads * head_dim
    tensors = [("model.embed_tokens.weight", (vocab_size, hidden_size))]
    for i in range(num_hidden_layers):
        layer = f"model.layers.{i}"
        tensors += [
            (f"{layer}.self_attn.q_proj.weight", (hidden_size, hidden_size)),
            (f"{layer}.self_attn.k_proj.weight", (kv, hidden_size)),
            (f"{layer}.self_attn.v_proj.weight", (kv, hidden_size)),
            (f"{layer}.self_attn.o_proj.weight", (hidden_size, hidden_size)),
            (f"{layer}.mlp.gate_proj.weight", (intermediate_size, hidden_size)),
            (f"{layer}.mlp.up_proj.weight", (intermediate_size, hidden_size)),
            (f"{layer}.mlp.down_proj.weight", (hidden_size, intermediate_size)),
            (f"{layer}.input_layernorm.weight", (hidden_size,)),
            (f"{layer}.post_attention_layernorm.weight", (hidden_size,)),
        ]
    tensors.append(("model.norm.weight", (hidden_size,)))
    return tensors if tie_word_embeddings else tensors + [("lm_head.weight", (vocab_size, hidden_size))]


LLAMA_3_2_ROPE = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 8192}


def llama_config(max_position_embeddings=131072, rope_scaling=LLAMA_3_2_ROPE, tie_word_embeddings=True,
                 torch_dtype="float32", **spec):
    """A Llama ``config.json`` as transformers writes it: Llama 3.2-style by default (long-context rope,
    tied head); Llama 3's first release had 8192 positions, no rope scaling and an untied head."""
    keys = ("num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads", "intermediate_size",
            "vocab_size")
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_act": "silu",
        "max_position_embeddings": max_position_embeddings,
        "rms_norm_eps": 1e-05,
        "rope_theta": 500000.0,
        "rope_scaling": rope_scaling,
        "tie_word_embeddings": tie_word_embeddings,
        "torch_dtype": torch_dtype,
        "attention_bias": False,
        "mlp_bias": False,
        **{k: spec[k] for k in keys},
    }


FAMILIES = {"gpt2": (gpt2_tensors, gpt2_config), "llama": (llama_tensors, llama_config)}


def normal_values(seed=0, std=0.02):
    """``fill(name, shape)``: N(0, std²) values, norm weights centred on one (as trained models have them)."""
    rng = np.random.default_rng(seed)

    def fill(name, shape):
        values = rng.standard_normal(shape, dtype=np.float32)
        values *= std
        if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight", "layernorm.weight", "norm.weight")):
            values += 1.0
        return values

    return fill


def tiled_values(std=0.02):
    """``fill(name, shape)``: one MiB of N(0, std²) values repeated: fast to write, for memory tests."""
    block = np.random.default_rng(0).standard_normal(1 << 18, dtype=np.float32) * std
    return lambda name, shape: np.resize(block, shape)


SAFETENSORS_DTYPES = {"float32": ("F32", np.dtype("float32")), "bfloat16": ("BF16", np.dtype(ml_dtypes.bfloat16))}


def write_safetensors(path, tensors, fill=None, dtype="float32"):
    """A safetensors file of ``fill(name, shape)`` values (default ``normal_values()``) stored as ``dtype``
    (float32 or bfloat16), written one tensor at a time: an 8-byte header length, a JSON header, then the raw bytes."""
    fill = fill or normal_values()
    code, numpy_dtype = SAFETENSORS_DTYPES[dtype]
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in tensors:
        size = int(np.prod(shape)) * numpy_dtype.itemsize
        header[name] = {"dtype": code, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # keep the data 8-byte aligned, as safetensors does
    with open(path, "wb") as f:
        f.write(len(encoded).to_bytes(8, "little"))
        f.write(encoded)
        for name, shape in tensors:
            f.write(fill(name, shape).astype(numpy_dtype, copy=False).tobytes())
    return offset


