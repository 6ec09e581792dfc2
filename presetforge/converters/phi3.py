"""Phi-3 (``model_type`` ``phi3``) → ``Phi3Backbone``.

Phi-3 is Llama-shaped with fused projections: ``qkv_proj`` stacks the query,
key and value weights (unequal parts under grouped-query attention) and
``gate_up_proj`` the gate and up weights; the shared rules cut them apart.
Its rope follows ``Phi3Config``: ``default`` or ``longrope`` only, the legacy
spellings ``su`` and ``yarn`` mean ``longrope``, and the top-level
``original_max_position_embeddings`` (4096 when absent) wins over the rope dict's.
"""

from presetforge.backbones.phi3 import Phi3Backbone
from presetforge.converters.base import HF_ACTIVATIONS, Converter, register, split, split_sizes, transposed
from presetforge.converters.llama import LlamaConverter, decoder_tensors, untied_head
from presetforge.converters.rope_config import rope_parameters
from presetforge.errors import ConversionError

_A = "transformer_layer_{i}/self_attention"
_F = "transformer_layer_{i}/feedforward"

# The unfused projections of Llama's tensor map, which Phi-3 stores fused.
_FUSED_AWAY = ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")

# What Phi3Config reads its rope from; ``original_max_position_embeddings`` is a field with this default.
_ROPE_KEYS = (
    "rope_parameters", "rope_scaling", "rope_theta", "partial_rotary_factor", "max_position_embeddings",
    "original_max_position_embeddings", "head_dim", "hidden_size", "num_attention_heads",
)
_ORIGINAL_CONTEXT = 4096
_LONGROPE_SPELLINGS = ("su", "yarn")  # what Phi3Config renames to longrope


def _rope(config):
    """The canonical rope of a Phi-3 config, read the way ``Phi3Config`` reads it."""
    view = {key: config[key] for key in _ROPE_KEYS if key in config}
    view.setdefault("original_max_position_embeddings", _ORIGINAL_CONTEXT)
    for layout in ("rope_scaling", "rope_parameters"):
        if isinstance(view.get(layout), dict):
            view[layout] = {
                key: "longrope" if key in ("type", "rope_type") and value in _LONGROPE_SPELLINGS else value
                for key, value in view[layout].items()
            }
    rope = rope_parameters(view)
    if rope["rope_type"] not in ("default", "longrope"):
        raise ConversionError(
            f"phi3 rope type {rope['rope_type']!r} is not one Phi-3 computes; transformers' Phi-3 takes "
            "default or longrope only"
        )
    return rope


@register("phi3")
class Phi3Converter(Converter):
    backbone_cls = Phi3Backbone
    prefixes = ("model.",)  # Phi3ForCausalLM and friends
    ignore = (
        r"lm_head\.weight",  # when tied to embed_tokens (an untied head is converted, see tensor_map)
        r"layers\.\d+\.self_attn\.rotary_emb\.inv_freq",  # a buffer older checkpoints saved
    )
    required = {"attention_bias": (False, "biases on the attention projections, which Phi-3's attention lacks")}
    irrelevant = (
        "attention_dropout", "resid_pdrop", "embd_pdrop",  # dropout in training
        "auto_map",  # the remote code of the original release; transformers' own Phi-3 is what runs
    )

    def backbone_config(self, config):
        heads = config.get("num_attention_heads", 32)
        hidden = config.get("hidden_size", 3072)
        head_dim = config.get("head_dim") or hidden // heads
        rope = _rope(config)
        partial = rope.get("partial_rotary_factor", 1.0)
        rotary_dim = int(head_dim * partial)
        if rotary_dim <= 0 or rotary_dim % 2:
            raise ConversionError(
                f"partial_rotary_factor={partial} rotates {rotary_dim} of {head_dim} "
                "features per head; rope needs a positive even number"
            )
        sliding_window = config.get("sliding_window")
        if sliding_window is not None and not (isinstance(sliding_window, int) and sliding_window > 0):
            raise ConversionError(f"sliding_window={sliding_window!r} is not a positive integer")
        return dict(
            vocabulary_size=config.get("vocab_size", 32064),
            num_layers=config.get("num_hidden_layers", 32),
            num_query_heads=heads,
            hidden_dim=hidden,
            intermediate_dim=config.get("intermediate_size", 8192),
            num_key_value_heads=config.get("num_key_value_heads") or heads,
            head_dim=head_dim,
            rope=rope,
            sliding_window=sliding_window,
            layer_norm_epsilon=config.get("rms_norm_eps", 1e-5),
            activation=self.pick(config, "hidden_act", HF_ACTIVATIONS, default="silu"),
            tie_word_embeddings=config.get("tie_word_embeddings", False),
            max_sequence_length=config.get("max_position_embeddings", 4096),
        )

    def tensor_map(self, arguments):
        query = arguments["num_query_heads"] * arguments["head_dim"]
        key_value = arguments["num_key_value_heads"] * arguments["head_dim"]
        shared = {name: rule for name, rule in decoder_tensors().items() if name.split(".")[-2] not in _FUSED_AWAY}
        fused = {
            "layers.{i}.self_attn.qkv_proj.weight": transposed(
                split_sizes((f"{_A}/query/kernel", f"{_A}/key/kernel", f"{_A}/value/kernel"),
                            (query, key_value, key_value), axis=0)
            ),
            # gate first, then up (``chunk(2)`` upstream)
            "layers.{i}.mlp.gate_up_proj.weight": transposed(
                split(f"{_F}/feedforward_gate/kernel", f"{_F}/feedforward_intermediate/kernel", axis=0)
            ),
        }
        return {**shared, **fused, **untied_head(arguments)}

    reference_stages = LlamaConverter.reference_stages  # the same modules, by the same names
