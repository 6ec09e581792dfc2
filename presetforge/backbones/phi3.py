"""Phi-3: Mistral's decoder (Llama's pre-norm block without biases, an optional sliding window),
with the rope that may rotate only part of each head and LongRoPE for long contexts.

What makes Phi-3 its own family is its checkpoint (fused ``qkv_proj`` and
``gate_up_proj``, split by its converter) and its rope settings, not its
computation, so the backbone is Mistral's under Phi-3's name.
"""

import keras

from presetforge.backbones.mistral import MistralBackbone


@keras.saving.register_keras_serializable(package="presetforge")
class Phi3Backbone(MistralBackbone):
    """Phi-3 decoder; inputs ``token_ids`` and ``padding_mask``, output the final hidden states.

    Arguments are ``MistralBackbone``'s; where keras-hub's ``Phi3Backbone``
    spreads the rope over ``rope_max_wavelength``, ``rope_scaling_*`` and
    ``pretraining_sequence_length``, ``rope`` is the one canonical rope dict
    (``default`` or ``longrope``, with ``partial_rotary_factor`` when below 1).
    Logits: ``backbone.logits(hidden)``.
    """
