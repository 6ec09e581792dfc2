"""GPT-2 (``model_type`` ``gpt2``) → ``GPT2Backbone``."""

from presetforge.backbones import GPT2Backbone
from presetforge.converters.base import HF_ACTIVATIONS, Converter, register, split, transpose

_L = "transformer_layer_{i}"


@register("gpt2")
class GPT2Converter(Converter):
    backbone_cls = GPT2Backbone
    prefixes = ("transformer.",)  # GPT2LMHeadModel and friends
    ignore = (
        r"lm_head\.weight",  # when tied to wte (an untied head is converted, see tensor_map)
        r"h\.\d+\.attn\.(masked_)?bias",  # causal-mask buffers of older checkpoints
    )
    irrelevant = (
        "attn_pdrop", "embd_pdrop", "n_ctx",  # dropout in training; n_ctx is an old alias of n_positions
        # The sequence-summary head of GPT2DoubleHeadsModel, which is not converted.
        "summary_activation", "summary_first_dropout", "summary_proj_to_labels", "summary_type", "summary_use_proj",
    )
    required = {
        "scale_attn_weights": (True, "scale attention scores by 1/sqrt(head_dim)"),
        "scale_attn_by_inverse_layer_idx": (False, "scale attention scores by 1/(layer_idx + 1)"),
        "reorder_and_upcast_attn": (False, "scale keys before the product and upcast attention"),
        "add_cross_attention": (False, "cross-attention blocks"),
    }
    # GPT-2's Conv1D weights are already [in, out], like Keras Dense kernels.
    tensors = {
        "wte.weight": "token_embedding/embeddings",
        "wpe.weight": "position_embedding/embeddings",
        "h.{i}.ln_1.weight": f"{_L}/self_attention_layer_norm/gamma",
        "h.{i}.ln_1.bias": f"{_L}/self_attention_layer_norm/beta",
        "h.{i}.attn.c_attn.weight": split(*(f"{_L}/self_attention/{p}/kernel" for p in ("query", "key", "value"))),
        "h.{i}.attn.c_attn.bias": split(*(f"{_L}/self_attention/{p}/bias" for p in ("query", "key", "value"))),
        "h.{i}.attn.c_proj.weight": f"{_L}/self_attention/attention_output/kernel",
        "h.{i}.attn.c_proj.bias": f"{_L}/self_attention/attention_output/bias",
        "h.{i}.ln_2.weight": f"{_L}/feedforward_layer_norm/gamma",
        "h.{i}.ln_2.bias": f"{_L}/feedforward_layer_norm/beta",
        "h.{i}.mlp.c_fc.weight": f"{_L}/feedforward_intermediate/kernel",
        "h.{i}.mlp.c_fc.bias": f"{_L}/feedforward_intermediate/bias",
        "h.{i}.mlp.c_proj.weight": f"{_L}/feedforward_output/kernel",
        "h.{i}.mlp.c_proj.bias": f"{_L}/feedforward_output/bias",
        "ln_f.weight": "layer_norm/gamma",
        "ln_f.bias": "layer_norm/beta",
    }

    def backbone_config(self, config):
        hidden = config.get("n_embd", 768)
        return dict(
            vocabulary_size=config.get("vocab_size", 50257),
            num_layers=config.get("n_layer", 12),
            num_heads=config.get("n_head", 12),
            hidden_dim=hidden,
            intermediate_dim=config.get("n_inner") or 4 * hidden,
            dropout=config.get("resid_pdrop", 0.1),
            max_sequence_length=config.get("n_positions", 1024),
            layer_norm_epsilon=config.get("layer_norm_epsilon", 1e-5),
            activation=self.pick(config, "activation_function", HF_ACTIVATIONS, default="gelu_new"),
            tie_word_embeddings=config.get("tie_word_embeddings", True),
        )

    def tensor_map(self, arguments):
        if arguments["tie_word_embeddings"]:
            return self.tensors
        return {**self.tensors, "lm_head.weight": transpose("token_embedding/reverse_embeddings")}

    def reference_stages(self, model):
        blocks = {f"layer_{i}": block for i, block in enumerate(model.h)}
        return {"embeddings": model.drop, **blocks, "final": model.ln_f}
