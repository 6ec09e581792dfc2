"""Tiny random Hugging Face checkpoints for converter, parity and CLI tests.

Every parameter (layer norms included) is drawn from N(0, 0.35²), so
a converter that drops a bias or swaps a gamma cannot pass parity by luck, and
exact and tanh GELU differ by ~2e-4 in the outputs (20x the 1e-5 tolerance).
Builders write the model, with ``tokenizer=True`` also a tokenizer trained on
the parity corpus (vocab files only, as older checkpoints ship them; the
model's vocabulary then matches it), and return the directory.

    make_gpt2(tmp_path / "gpt2", n_inner=40)                  # model.safetensors
    make_bert(tmp_path / "bert", tokenizer=True)               # + vocab.txt
    make_bert(tmp_path / "bert", fmt="bin", hidden_act="gelu_new")
    make_gpt2(d, model_class="GPT2LMHeadModel", fmt="sharded")  # transformer.* names, index + shards
"""

import json
from pathlib import Path

import numpy as np
import tokenizers
import torch
import transformers
from safetensors.torch import load_file, save_file
from tokenizers import models, normalizers, pre_tokenizers, trainers

from presetforge.checks.corpus import TOKENIZER_CORPUS

GPT2_TINY = dict(n_layer=2, n_embd=32, n_head=4, vocab_size=97, n_positions=32, bos_token_id=0, eos_token_id=0)
BERT_TINY = dict(
    num_hidden_layers=2,
    hidden_size=32,
    num_attention_heads=4,
    intermediate_size=48,
    vocab_size=97,
    max_position_embeddings=32,
    type_vocab_size=2,
)
FORMATS = ("safetensors", "sharded", "bin", "sharded_bin")


BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TRAINING_TEXT = [*TOKENIZER_CORPUS, "the cat sat on the mat", "tokenizers are trained on text"] * 3


def write_wordpiece_tokenizer(directory, lowercase=True, tokenizer_config=None):
    """A BERT-style checkpoint tokenizer: ``vocab.txt`` only (+ tokenizer_config.json)."""
    tok = tokenizers.Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(TRAINING_TEXT, trainers.WordPieceTrainer(vocab_size=300, special_tokens=BERT_SPECIALS))
    vocab = sorted(tok.get_vocab().items(), key=lambda item: item[1])
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("".join(f"{token}\n" for token, _ in vocab), encoding="utf-8")
    (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config or {"tokenizer_class": "BertTokenizer"}))
    return directory


def write_byte_bpe_tokenizer(directory, tokenizer_config=None):
    """A GPT-2-style checkpoint tokenizer: ``vocab.json`` + ``merges.txt`` only."""
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(TRAINING_TEXT, trainer)
    directory.mkdir(parents=True, exist_ok=True)
    tok.model.save(str(directory))
    (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config or {"tokenizer_class": "GPT2Tokenizer"}))
    return directory


def _tokenizer_vocabulary_size(directory):
    return transformers.AutoTokenizer.from_pretrained(directory).vocab_size


def _randomize(model, seed, std):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
    return model


def _save(model, directory, fmt):
    directory = Path(directory)
    if fmt == "safetensors":
        model.save_pretrained(directory)
    elif fmt == "sharded":
        model.save_pretrained(directory, max_shard_size="20KB")
    elif fmt in ("bin", "sharded_bin"):
        # transformers 5 only writes safetensors; write what older versions did.
        model.config.save_pretrained(directory)
        state_dict = model.state_dict()
        if fmt == "bin":
            torch.save(state_dict, directory / "pytorch_model.bin")
        else:
            names = list(state_dict)
            halves = {
                "pytorch_model-00001-of-00002.bin": names[: len(names) // 2],
                "pytorch_model-00002-of-00002.bin": names[len(names) // 2 :],
            }
            weight_map = {}
            for shard, keys in halves.items():
                torch.save({k: state_dict[k] for k in keys}, directory / shard)
                weight_map.update({k: shard for k in keys})
            (directory / "pytorch_model.bin.index.json").write_text(
                json.dumps({"metadata": {}, "weight_map": weight_map})
            )
    else:
        raise ValueError(f"unknown format {fmt!r}; one of {FORMATS}")
    return directory


def make_gpt2(
    directory, *, model_class="GPT2Model", fmt="safetensors", seed=0, std=0.35, tokenizer=False, **config_overrides
):
    """A random tiny GPT-2 checkpoint in ``directory`` (``GPT2_TINY`` updated by ``config_overrides``)."""
    if tokenizer:
        write_byte_bpe_tokenizer(Path(directory))
        config_overrides.setdefault("vocab_size", _tokenizer_vocabulary_size(directory))
    config = transformers.GPT2Config(**{**GPT2_TINY, **config_overrides})
    model = getattr(transformers, model_class)(config)
    return _save(_randomize(model, seed, std), directory, fmt)


def make_bert(
    directory, *, model_class="BertModel", fmt="safetensors", seed=0, std=0.35, tokenizer=False, **config_overrides
):
    """A random tiny BERT checkpoint in ``directory`` (``BERT_TINY`` updated by ``config_overrides``)."""
    if tokenizer:
        write_wordpiece_tokenizer(Path(directory))
        config_overrides.setdefault("vocab_size", _tokenizer_vocabulary_size(directory))
    config = transformers.BertConfig(**{**BERT_TINY, **config_overrides})
    model = getattr(transformers, model_class)(config)
    return _save(_randomize(model, seed, std), directory, fmt)


def make_causal_lm(directory, model_type, *, fmt="safetensors", seed=0, std=0.35, **config):
    """A random tiny ``<Family>ForCausalLM`` checkpoint of ``model_type`` (``llama``, ``mistral`` …).

    ``config`` is passed to the family's config class whole (give every size);
    every parameter, norms and biases included, is drawn from N(0, std²).
    """
    config = transformers.AutoConfig.for_model(model_type, **config)
    model = transformers.AutoModelForCausalLM.from_config(config)
    return _save(_randomize(model, seed, std), directory, fmt)


def make_encoder(directory, model_type, *, model_class=None, fmt="safetensors", seed=0, std=0.35, **config):
    """A random tiny encoder checkpoint of ``model_type`` (``distilbert``, ``roberta`` …): the bare
    model (``AutoModel``, pooler included where the family has one) or ``model_class``
    (``RobertaForMaskedLM``: prefixed names, a head, no pooler). ``config`` gives every size."""
    config = transformers.AutoConfig.for_model(model_type, **config)
    model = getattr(transformers, model_class)(config) if model_class else transformers.AutoModel.from_config(config)
    return _save(_randomize(model, seed, std), directory, fmt)


def rewrite_tensors(directory, edit):
    """Replace ``model.safetensors``'s tensors with ``edit(dict_of_tensors)`` (which may mutate and return it)."""
    path = Path(directory) / "model.safetensors"
    tensors = edit(load_file(path))
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata={"format": "pt"})
    return directory


def reference(directory, model_class=None):
    """The checkpoint loaded by transformers: float32, eager attention, eval mode."""
    config = json.loads((Path(directory) / "config.json").read_text())
    model_class = model_class or {"gpt2": "GPT2Model", "bert": "BertModel"}[config["model_type"]]
    model = getattr(transformers, model_class).from_pretrained(directory, attn_implementation="eager")
    return model.eval()


def reference_outputs(model, x):
    """transformers' outputs for ``inputs``: ``last_hidden_state`` (+ ``pooler_output`` for BERT), as numpy."""
    kwargs = {
        "input_ids": torch.tensor(x["token_ids"]).long(),
        "attention_mask": torch.tensor(x["padding_mask"]).long(),
    }
    if "segment_ids" in x:
        kwargs["token_type_ids"] = torch.tensor(x["segment_ids"]).long()
    with torch.no_grad():
        out = model(**kwargs)
    result = {"last_hidden_state": out.last_hidden_state.numpy()}
    if getattr(out, "pooler_output", None) is not None:
        result["pooler_output"] = out.pooler_output.numpy()
    return result
