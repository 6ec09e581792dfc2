"""Tiny upstream configs for every rope type, in the older layout and the one transformers writes today.

Each case is an older-layout ``config.json`` (``rope_theta`` + ``rope_scaling``)
for a family's transformers config class; ``layouts`` also gives the same
config as transformers saves it now (``rope_parameters``), so a test can run
both through presetforge and through transformers itself.
"""

import copy
import dataclasses

import torch
from transformers import Gemma3TextConfig, LlamaConfig, Phi3Config, Qwen2Config
from transformers.models.gemma3.modeling_gemma3 import Gemma3RotaryEmbedding
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
from transformers.models.phi3.modeling_phi3 import Phi3RotaryEmbedding
from transformers.models.qwen2.modeling_qwen2 import Qwen2RotaryEmbedding

_LLAMA = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
_PHI3 = dict(hidden_size=64, num_attention_heads=4, max_position_embeddings=128)


@dataclasses.dataclass(frozen=True)
class RopeCase:
    name: str
    config_cls: type
    rotary_cls: type
    head_dim: int
    config: dict  # older layout
    lengths: tuple  # sequence lengths to probe: below and above the (original) context
    layer_types: tuple = (None,)  # Gemma 3: the layer types with their own rope
    default_theta: dict = dataclasses.field(default_factory=lambda: {None: 10000.0})

    def layouts(self):
        """``{"rope_scaling": older config, "rope_parameters": the same as transformers saves it}``."""
        saved = self.transformers_config(self.config).to_dict()
        assert "rope_parameters" in saved and "rope_scaling" not in saved
        return {"rope_scaling": copy.deepcopy(self.config), "rope_parameters": saved}

    def transformers_config(self, config):
        return self.config_cls(**copy.deepcopy(config))  # transformers edits the rope dicts it is given

    def reference(self, config, positions, layer_type=None):
        """transformers' cos and sin (float32 numpy) from a fresh rotary module, for ``positions`` ``[batch, seq]``."""
        rotary = self.rotary_cls(self.transformers_config(config))
        x = torch.zeros(1, dtype=torch.float32)
        args = (layer_type,) if layer_type is not None else ()
        cos, sin = rotary(x, torch.as_tensor(positions, dtype=torch.int64), *args)
        return cos.numpy(), sin.numpy()


_FACTORS_8 = ([1.0, 1.1, 1.3, 1.7, 2.2, 2.9, 3.5, 4.0], [1.0, 1.5, 2.5, 4.0, 6.0, 9.0, 12.0, 16.0])

CASES = [
    RopeCase("llama-default", LlamaConfig, LlamaRotaryEmbedding, 32,
             dict(_LLAMA, head_dim=32, rope_theta=500000.0), (48, 100)),
    RopeCase("llama-linear", LlamaConfig, LlamaRotaryEmbedding, 16,
             dict(_LLAMA, rope_theta=10000.0, rope_scaling={"type": "linear", "factor": 4.0}), (48, 100)),
    RopeCase("llama-dynamic", LlamaConfig, LlamaRotaryEmbedding, 16,
             dict(_LLAMA, rope_theta=10000.0, rope_scaling={"type": "dynamic", "factor": 3.0}), (40, 64, 65, 150)),
    # wavelengths 6.3, 20, 63, 200 … against 64/4 and 64/1: short, blended, blended, long
    RopeCase("llama-llama3", LlamaConfig, LlamaRotaryEmbedding, 16,
             dict(_LLAMA, max_position_embeddings=256, rope_theta=10000.0,
                  rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0, "original_max_position_embeddings": 64}), (50, 200)),
    RopeCase("qwen2-yarn", Qwen2Config, Qwen2RotaryEmbedding, 16,
             dict(_LLAMA, max_position_embeddings=128, rope_theta=1000000.0,
                  rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32}), (20, 120)),
    RopeCase("llama-yarn-mscale", LlamaConfig, LlamaRotaryEmbedding, 32,
             dict(_LLAMA, head_dim=32, max_position_embeddings=128, rope_theta=10000.0,
                  rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32,
                                "mscale": 0.707, "mscale_all_dim": 1.0, "beta_fast": 16, "beta_slow": 2,
                                "truncate": False}), (20, 120)),
    RopeCase("llama-yarn-attention-factor", LlamaConfig, LlamaRotaryEmbedding, 16,
             dict(_LLAMA, rope_theta=10000.0,
                  rope_scaling={"rope_type": "yarn", "factor": 2.0, "attention_factor": 1.25}), (20, 100)),
    # a base so small that the ramp's upper end passes the last dimension and is clamped to it
    RopeCase("llama-yarn-wide-ramp", LlamaConfig, LlamaRotaryEmbedding, 16,
             dict(_LLAMA, max_position_embeddings=4096, rope_theta=10.0,
                  rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024}),
             (20, 120)),
    RopeCase("phi3-longrope", Phi3Config, Phi3RotaryEmbedding, 16,
             dict(_PHI3, original_max_position_embeddings=32, rope_theta=10000.0,
                  rope_scaling={"type": "longrope", "short_factor": _FACTORS_8[0], "long_factor": _FACTORS_8[1]}),
             (20, 32, 33, 100)),
    RopeCase("phi3-longrope-partial", Phi3Config, Phi3RotaryEmbedding, 16,
             dict(_PHI3, original_max_position_embeddings=32, rope_theta=10000.0, partial_rotary_factor=0.5,
                  rope_scaling={"type": "longrope", "short_factor": _FACTORS_8[0][:4],
                                "long_factor": _FACTORS_8[1][:4]}), (20, 100)),
    RopeCase("phi3-default-partial", Phi3Config, Phi3RotaryEmbedding, 16,
             dict(_PHI3, rope_theta=10000.0, partial_rotary_factor=0.75), (20, 100)),
    RopeCase("gemma3-linear", Gemma3TextConfig, Gemma3RotaryEmbedding, 16,
             dict(_LLAMA, head_dim=16, rope_theta=100000.0, rope_local_base_freq=1000.0,
                  rope_scaling={"rope_type": "linear", "factor": 8.0}), (20, 100),
             layer_types=("full_attention", "sliding_attention"),
             default_theta={"full_attention": 1000000.0, "sliding_attention": 10000.0}),
]
