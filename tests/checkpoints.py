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

import tokenizers
import torch
import transformers
from safetensors.torch import load_file, save_file
from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers, processors, trainers

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


# -- tokenizers in the file layout each family's checkpoints ship ------------
#
# Each writer trains a tiny tokenizer of the family's kind on the parity corpus
# and writes what real checkpoints of the family hold: ``tokenizer.json`` (the
# fast-tokenizer file) and ``tokenizer_config.json`` (class, special tokens, the
# ``added_tokens_decoder`` transformers saves). A ``tokenizer_config`` argument
# replaces that config entirely. The model's vocabulary size is
# ``len(AutoTokenizer.from_pretrained(directory))``: added special tokens may
# lie past the trained vocabulary (Llama 3, Qwen).

METASPACE = "\u2581"
BYTE_TOKENS = tuple(f"<0x{byte:02X}>" for byte in range(256))
LLAMA3_SPECIALS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
)
QWEN2_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
ROBERTA_SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "sep_token": "</s>",
    "cls_token": "<s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
}
# The split patterns of Llama 3's and Qwen2's tokenizer.json (numbers in runs of three vs one digit).
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Characters a SentencePiece normalization rule rewrites, for the XLM-R fixture's charsmap.
CHARSMAP_RULES = {"\ufb01": "fi", "\u00a0": " ", "\u2003": " ", "\u00c5": "A\u030a", "\u200b": ""}


def _train(model, *, normalizer=None, pre_tokenizer=None, trainer):
    """``model`` trained on ``TRAINING_TEXT``, as JSON (``vocab``, and ``merges`` for BPE)."""
    tok = tokenizers.Tokenizer(model)
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.train_from_iterator(TRAINING_TEXT, trainer)
    return json.loads(tok.to_str())["model"]


def _specials(tok, tokens):
    tok.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in tokens])


def _added_tokens_decoder(tok):
    """``added_tokens_decoder`` as transformers writes it into tokenizer_config.json."""
    return {
        str(index): {
            "content": t.content,
            "lstrip": t.lstrip,
            "normalized": t.normalized,
            "rstrip": t.rstrip,
            "single_word": t.single_word,
            "special": t.special,
        }
        for index, t in sorted(tok.get_added_tokens_decoder().items())
    }


def _write_tokenizer(directory, tok, tokenizer_config):
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tok.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    return directory


def _template(tok, single, pair):
    """A ``TemplateProcessing`` with the ids of ``tok``'s special tokens it names."""
    named = dict.fromkeys(piece.split(":")[0] for piece in single.split() + pair.split() if not piece.startswith("$"))
    return processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=[(token, tok.token_to_id(token)) for token in named]
    )


def _sentencepiece_bpe(specials, prepend_scheme):
    """A byte-fallback BPE as SentencePiece trains it: specials, then the 256 byte tokens, then pieces.

    The alphabet is kept small so rarer characters of the corpus (CJK, emoji)
    fall back to byte tokens.
    """
    trained = _train(
        models.BPE(),
        pre_tokenizer=pre_tokenizers.Metaspace(prepend_scheme=prepend_scheme),
        trainer=trainers.BpeTrainer(vocab_size=600, special_tokens=[*specials, *BYTE_TOKENS], limit_alphabet=70),
    )
    return models.BPE(
        trained["vocab"],
        [tuple(m) for m in trained["merges"]],
        unk_token="<unk>",
        fuse_unk=True,
        byte_fallback=True,
    )


def _sentencepiece_decoder(strip_prefix):
    steps = [decoders.Replace(METASPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
    return decoders.Sequence(steps + ([decoders.Strip(" ", 1, 0)] if strip_prefix else []))


def write_sentencepiece_bpe_tokenizer(directory, tokenizer_config=None):
    """Llama 2 / Mistral / Phi-3: SentencePiece BPE with byte fallback, converted to tokenizer.json.

    The file in the layout those checkpoints ship (a normalizer prepends "▁"
    and turns spaces into "▁", no pre-tokenizer, ``<s>`` in front); the
    config is Llama 2's (``legacy: false``; Mistral 7B says ``true``).
    """
    tok = tokenizers.Tokenizer(_sentencepiece_bpe(["<unk>", "<s>", "</s>"], "always"))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend(METASPACE), normalizers.Replace(" ", METASPACE)])
    tok.decoder = _sentencepiece_decoder(strip_prefix=True)
    _specials(tok, ["<unk>", "<s>", "</s>"])
    tok.post_processor = _template(tok, "<s>:0 $A:0", "<s>:0 $A:0 <s>:1 $B:1")
    config = {
        "tokenizer_class": "LlamaTokenizer",
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": None,
        "legacy": False,
        "clean_up_tokenization_spaces": False,
        "added_tokens_decoder": _added_tokens_decoder(tok),
    }
    return _write_tokenizer(directory, tok, tokenizer_config or config)


def write_gemma_tokenizer(directory, tokenizer_config=None):
    """Gemma: SentencePiece BPE with byte fallback and no dummy prefix; ``<bos>`` in front."""
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"]
    tok = tokenizers.Tokenizer(_sentencepiece_bpe(specials, "never"))
    tok.normalizer = normalizers.Replace(" ", METASPACE)
    tok.decoder = _sentencepiece_decoder(strip_prefix=False)
    _specials(tok, specials)
    tok.post_processor = _template(tok, "<bos>:0 $A:0", "<bos>:0 $A:0 <bos>:1 $B:1")
    config = {
        "tokenizer_class": "GemmaTokenizer",
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<bos>",
        "eos_token": "<eos>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"],
        "spaces_between_special_tokens": False,
        "clean_up_tokenization_spaces": False,
        "added_tokens_decoder": _added_tokens_decoder(tok),
    }
    return _write_tokenizer(directory, tok, tokenizer_config or config)


def _regex_byte_bpe(split_pattern, normalizer=None, **model_options):
    """A byte-level BPE whose pre-tokenizer splits with ``split_pattern`` first (Llama 3, Qwen2)."""
    pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(split_pattern), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    trained = _train(
        models.BPE(),
        normalizer=normalizer,
        pre_tokenizer=pre_tokenizer,
        trainer=trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()),
    )
    model = models.BPE(trained["vocab"], [tuple(m) for m in trained["merges"]], **model_options)
    tok = tokenizers.Tokenizer(model)
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    return tok


def write_llama3_byte_bpe_tokenizer(directory, tokenizer_config=None):
    """Llama 3: byte-level BPE after a regex split; special tokens past the vocabulary; ``<|begin_of_text|>`` first."""
    tok = _regex_byte_bpe(LLAMA3_SPLIT, ignore_merges=True)
    _specials(tok, LLAMA3_SPECIALS)
    bos = "<|begin_of_text|>"
    template = _template(tok, f"{bos}:0 $A:0", f"{bos}:0 $A:0 {bos}:1 $B:1")
    tok.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=False), template])
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|end_of_text|>",
        "clean_up_tokenization_spaces": True,
        "model_input_names": ["input_ids", "attention_mask"],
        "added_tokens_decoder": _added_tokens_decoder(tok),
    }
    return _write_tokenizer(directory, tok, tokenizer_config or config)


def write_qwen2_byte_bpe_tokenizer(directory, tokenizer_config=None):
    """Qwen2 / Qwen2.5 / Qwen3: NFC, byte-level BPE with a regex split, nothing added around the text."""
    tok = _regex_byte_bpe(QWEN2_SPLIT, normalizer=normalizers.NFC())
    _specials(tok, QWEN2_SPECIALS)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    config = {
        "tokenizer_class": "Qwen2Tokenizer",
        "add_bos_token": False,
        "add_prefix_space": False,
        "bos_token": None,
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "errors": "replace",
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "split_special_tokens": False,
        "clean_up_tokenization_spaces": False,
        "added_tokens_decoder": _added_tokens_decoder(tok),
    }
    return _write_tokenizer(directory, tok, tokenizer_config or config)


def write_roberta_bpe_tokenizer(directory, tokenizer_config=None):
    """RoBERTa: GPT-2's byte-level BPE with ``<s> … </s>`` around the text; ``vocab.json`` + ``merges.txt`` too.

    ``<mask>`` is the last id and swallows the space before it (``lstrip``), as in roberta-base.
    """
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    trained = _train(
        models.BPE(),
        pre_tokenizer=pre_tokenizers.ByteLevel(add_prefix_space=False),
        trainer=trainers.BpeTrainer(
            vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    vocab = {**trained["vocab"], "<mask>": len(trained["vocab"])}
    tok = tokenizers.Tokenizer(
        models.BPE(vocab, [tuple(m) for m in trained["merges"]], continuing_subword_prefix="", end_of_word_suffix="")
    )
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    _specials(tok, specials)
    tok.add_special_tokens([AddedToken("<mask>", special=True, normalized=False, lstrip=True)])
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", vocab["</s>"]), ("<s>", vocab["<s>"]), trim_offsets=True, add_prefix_space=False
    )
    config = {
        "tokenizer_class": "RobertaTokenizer",
        **ROBERTA_SPECIAL_TOKENS,
        "add_prefix_space": False,
        "trim_offsets": True,
        "errors": "replace",
        "added_tokens_decoder": _added_tokens_decoder(tok),
    }
    directory = _write_tokenizer(directory, tok, tokenizer_config or config)
    tok.model.save(str(directory))
    return directory


def _precompiled_charsmap(rules):
    """A SentencePiece ``precompiled_charsmap``: a Darts double-array trie over UTF-8 keys, then the outputs.

    Each trie node gets its own 256-unit block, so a byte's child sits at
    ``block + byte`` and a leaf's value at ``block + 0``; unused units are zero
    (label 0 never matches a non-NUL byte).
    """
    outputs, values = b"", {}
    for key, replacement in rules.items():
        values[key.encode("utf-8")] = len(outputs)
        outputs += replacement.encode("utf-8") + b"\0"
    trie = {}
    for key in values:
        node = trie
        for byte in key:
            node = node.setdefault(byte, {})
        node[None] = values[key]
    units = [0] * 256
    pending = [(0, trie)]  # (unit position, trie node)
    while pending:
        position, node = pending.pop()
        block = len(units)
        units += [0] * 256
        units[position] |= (position ^ block) << 10
        if None in node:
            units[position] |= 1 << 8
            units[block] = (1 << 31) | node[None]
        for byte, child in node.items():
            if byte is not None:
                units[block + byte] = byte
                pending.append((block + byte, child))
    trie_bytes = b"".join(unit.to_bytes(4, "little") for unit in units)
    return len(trie_bytes).to_bytes(4, "little") + trie_bytes + outputs


def write_unigram_tokenizer(directory, tokenizer_config=None):
    """XLM-RoBERTa: SentencePiece Unigram (precompiled normalizer, "▁" prefix); ``<s> … </s>`` around the text."""
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    metaspace = pre_tokenizers.Metaspace(prepend_scheme="always")
    trained = _train(
        models.Unigram(),
        pre_tokenizer=metaspace,
        trainer=trainers.UnigramTrainer(vocab_size=300, special_tokens=specials, unk_token="<unk>"),
    )
    # The corpus writes special tokens as text; a piece the trainer learned from them would be a duplicate.
    learned = [tuple(piece) for piece in trained["vocab"][len(specials) :] if piece[0] not in (*specials, "<mask>")]
    vocab = [(token, 0.0) for token in specials] + learned + [("<mask>", 0.0)]
    tok = tokenizers.Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(_precompiled_charsmap(CHARSMAP_RULES)), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = metaspace
    tok.decoder = decoders.Metaspace(prepend_scheme="always")
    _specials(tok, specials)
    tok.add_special_tokens([AddedToken("<mask>", special=True, normalized=False, lstrip=True)])
    tok.post_processor = _template(tok, "<s>:0 $A:0 </s>:0", "<s>:0 $A:0 </s>:0 </s>:0 $B:0 </s>:0")
    config = {
        "tokenizer_class": "XLMRobertaTokenizer",
        **ROBERTA_SPECIAL_TOKENS,
        "clean_up_tokenization_spaces": True,
        "added_tokens_decoder": _added_tokens_decoder(tok),
    }
    return _write_tokenizer(directory, tok, tokenizer_config or config)


def write_distilbert_tokenizer(directory, tokenizer_config=None):
    """DistilBERT: the uncased WordPiece of ``write_wordpiece_tokenizer``, with the tokenizer.json it ships today."""
    config = tokenizer_config or {"tokenizer_class": "DistilBertTokenizer", "do_lower_case": True}
    directory = write_wordpiece_tokenizer(Path(directory), True, config)
    vocab = models.WordPiece.read_file(str(directory / "vocab.txt"))
    tok = tokenizers.Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    _specials(tok, BERT_SPECIALS)
    tok.post_processor = _template(tok, "[CLS]:0 $A:0 [SEP]:0", "[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1")
    tok.save(str(directory / "tokenizer.json"))
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
