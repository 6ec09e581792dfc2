"""Rebuilding the tokenizer transformers builds from a checkpoint's files, class by class.

In transformers 5 the model-specific tokenizer classes read only the
vocabulary and merges from ``tokenizer.json`` (or ``vocab.txt`` /
``vocab.json`` + ``merges.txt``) and set the rest of the pipeline themselves,
from their defaults and ``tokenizer_config.json``; only the generic class uses
the file whole. Each class presetforge knows has a recipe here that makes the
same pipeline, so ids are identical to ``AutoTokenizer``'s, special tokens included.
"""

import base64
import json
from typing import Callable, NamedTuple

import tokenizers
from tokenizers import AddedToken, Regex, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE, Unigram, WordPiece

from presetforge.errors import PresetError

# The named special tokens of transformers, in the order it adds them to the
# vocabulary (the order matters when a token is missing and gets a new id).
SPECIAL_TOKEN_ROLES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")

def _read_optional_json(path):
    """A JSON file's content, or ``{}`` when the file does not exist."""
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise PresetError(f"{path} is not valid JSON: {e}") from None


def _token_content(value):
    """A special token's text, whether HF saved it as a string or an AddedToken dict."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _as_added_token(value):
    """An HF special-token value as a special ``AddedToken`` (strings: not normalized, as HF does)."""
    if isinstance(value, dict):
        fields = {k: v for k, v in value.items() if k in ("single_word", "lstrip", "rstrip", "normalized")}
        return AddedToken(value["content"], special=True, **fields)
    return AddedToken(value, special=True)



def hf_tokenizer(path):
    """What ``transformers.AutoTokenizer.from_pretrained(path)`` builds: ``(source, special tokens)``.

    ``source`` is the checkpoint's ``tokenizer.json`` path when transformers
    uses that file as it is (the preset then keeps it byte for byte), else the
    ``tokenizers.Tokenizer`` it rebuilds; the special tokens map HF role names
    to their text.
    """
    if not path.is_dir():
        raise PresetError(f"{path} is not a directory")
    hf_config = _read_hf_config(path)
    tokenizer_json = path / "tokenizer.json"
    upstream_text = tokenizer_json.read_text(encoding="utf-8") if tokenizer_json.is_file() else None
    upstream = tokenizers.Tokenizer.from_str(upstream_text) if upstream_text is not None else None
    as_loaded = upstream.to_str() if upstream is not None else None
    class_name = _tokenizer_class(path, hf_config, upstream_text)
    recipe = _RECIPES.get(class_name)
    if recipe is None and upstream is None:
        raise PresetError(
            f"{path} has no tokenizer.json, and its tokenizer ({class_name or 'of unknown class'}) cannot be "
            "rebuilt exactly from its files; presetforge rebuilds only the classes that read vocab.txt "
            "or vocab.json + merges.txt (BERT, GPT-2, RoBERTa, Qwen2). Save the tokenizer with tokenizer.json."
        )
    if recipe is None:
        backend, special = upstream, _special_tokens({}, hf_config)
        _add_hf_tokens(backend, hf_config, special)
    else:
        backend, special = _build(recipe, path, hf_config, upstream_text, upstream, class_name)
    # Nothing changed: keep the upstream file byte for byte.
    unchanged = as_loaded is not None and backend.to_str() == as_loaded
    return (tokenizer_json if unchanged else backend), _contents(special)


def _contents(special):
    """Role → token text, for the roles that have a token."""
    return {role: _token_content(value) for role, value in special.items() if _token_content(value) is not None}


def _read_hf_config(path):
    """``tokenizer_config.json``, with the legacy files merged in the way transformers merges them.

    A config written by transformers >= 4.34 lists every added token
    (``added_tokens_decoder``) and is complete. Older checkpoints spread that
    over ``special_tokens_map.json`` (it overrides the config),
    ``added_tokens.json`` (tokens not named special there are normalized) and
    tokenizer.json's own added tokens (with their flags, e.g. RoBERTa's
    ``<mask>`` that takes the space before it).
    """
    config = _read_optional_json(path / "tokenizer_config.json")
    if "added_tokens_decoder" in config:
        return config
    extras = _extra_special(config)
    for key, value in _read_optional_json(path / "special_tokens_map.json").items():
        if key == "extra_special_tokens":
            extras += [token for token in _extra_special({key: value}) if token not in extras]
            config[key] = extras
        elif key != "additional_special_tokens" or not extras:
            # transformers only takes the map's additional tokens when the config has none, and
            # only after added_tokens.json is read: they do not make its tokens special.
            config[key] = value
    named = [config.get(role) for role in SPECIAL_TOKEN_ROLES] + extras
    named = {_token_content(value) for value in named}
    config["added_tokens_decoder"] = {
        index: {"content": token, "normalized": token not in named, "special": token in named}
        for token, index in _read_optional_json(path / "added_tokens.json").items()
    }
    for token in _read_optional_json(path / "tokenizer.json").get("added_tokens", []):
        config["added_tokens_decoder"][token["id"]] = {k: v for k, v in token.items() if k != "id"}
    return config


# transformers' tokenizer class for each model type presetforge converts (its
# TOKENIZER_MAPPING_NAMES); "llama" has none. "TokenizersBackend" is the generic
# class (PreTrainedTokenizerFast), which loads tokenizer.json whole.
_GENERIC = "TokenizersBackend"
_GENERIC_NAMES = frozenset({"TokenizersBackend", "PreTrainedTokenizer", "PythonBackend"})
_CLASS_BY_MODEL_TYPE = {
    "bert": "BertTokenizer",
    "distilbert": "BertTokenizer",
    "gpt2": "GPT2Tokenizer",
    "roberta": "RobertaTokenizer",
    "xlm-roberta": "XLMRobertaTokenizer",
    "qwen2": "Qwen2Tokenizer",
    "qwen3": "Qwen2Tokenizer",
    "gemma": "GemmaTokenizer",
    "gemma2": "GemmaTokenizer",
    "gemma3": "GemmaTokenizer",
    "gemma3_text": "GemmaTokenizer",
    "mistral": _GENERIC,
    "phi3": _GENERIC,
}
# Model types whose declared tokenizer_class transformers distrusts, using its own class instead.
_DECLARED_CLASS_OVERRIDDEN = frozenset({"qwen2", "phi3"})


def _class_name(name):
    """A tokenizer class name as transformers 5 resolves it: no ``Fast`` suffix, generic names merged."""
    if not isinstance(name, str) or not name:
        return None
    name = name.removesuffix("Fast")
    return _GENERIC if name in _GENERIC_NAMES else name


def _tokenizer_class(path, hf_config, upstream):
    """The tokenizer class ``AutoTokenizer`` instantiates for ``path`` (``None``: it cannot tell).

    The declared ``tokenizer_class`` wins, except: a Llama class over a
    byte-level tokenizer.json (Llama 3 checkpoints) is generic; a model type
    whose own class differs gets the generic class if that is its class
    (Mistral, Phi-3), its own class where transformers distrusts the hub
    (Qwen2). Nothing declared: the model type's class; no config.json either:
    the vocab files present (BERT's or GPT-2's).
    """
    model_config = _read_optional_json(path / "config.json")
    model_type = model_config.get("model_type")
    declared = _class_name(hf_config.get("tokenizer_class") or model_config.get("tokenizer_class"))
    registered = _CLASS_BY_MODEL_TYPE.get(model_type)
    byte_level = '"ByteLevel"' in (upstream or "")
    if declared == "LlamaTokenizer" and model_type not in _DECLARED_CLASS_OVERRIDDEN and byte_level:
        return _GENERIC
    if declared and registered and declared != registered:
        if registered == _GENERIC:
            return _GENERIC
        return registered if model_type in _DECLARED_CLASS_OVERRIDDEN else declared
    if declared or registered:
        return declared or registered
    if model_type is None and upstream is None:
        if (path / "vocab.txt").is_file():
            return "BertTokenizer"
        if (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
            return "GPT2Tokenizer"
    return None


def _extra_special(hf_config):
    """The config's extra special tokens (v5 ``extra_special_tokens``, or v4 ``additional_special_tokens``)."""
    extra = hf_config.get("extra_special_tokens") or hf_config.get("additional_special_tokens") or []
    return list(extra.values()) if isinstance(extra, dict) else list(extra)


def _special_tokens(defaults, hf_config):
    """Role → token (string or AddedToken dict): the class defaults, overridden by the config."""
    special = dict(defaults)
    special.update({role: hf_config[role] for role in SPECIAL_TOKEN_ROLES if role in hf_config})
    return special


def _add_hf_tokens(backend, hf_config, special):
    """Add the tokens ``transformers`` adds on load: saved added tokens, then missing special tokens.

    ``special`` maps each role to its token (string or AddedToken dict); its
    values are read, not changed.
    """
    saved = hf_config.get("added_tokens_decoder") or {}
    flags = ("single_word", "lstrip", "rstrip", "normalized", "special")
    tokens = [
        AddedToken(t["content"], **{k: t[k] for k in flags if k in t})
        for _, t in sorted(saved.items(), key=lambda item: int(item[0]))
    ]
    present = {t.content for t in backend.get_added_tokens_decoder().values()} | {t.content for t in tokens}
    wanted = [special[role] for role in SPECIAL_TOKEN_ROLES if special.get(role)] + _extra_special(hf_config)
    for value in wanted:
        content = _token_content(value)
        if content and content not in present:
            tokens.append(_as_added_token(value))
            present.add(content)
    if tokens:
        backend.add_tokens(tokens)


# -- the pipelines of transformers' model-specific tokenizer classes ---------


class _Recipe(NamedTuple):
    """How one transformers tokenizer class builds its tokenizer from a vocabulary.

    ``model``: the model type it reads from tokenizer.json; ``vocab_files``:
    the files it reads instead when there is no tokenizer.json (none: the
    SentencePiece ``.model`` classes, which presetforge does not parse);
    ``defaults``: its special tokens when the config names none; ``pipeline``:
    ``(vocab, merges, hf_config, special, upstream_json) -> tokenizers.Tokenizer``
    with model, normalizer, pre-tokenizer and decoder set; ``post_processor``:
    ``(backend, hf_config, special) -> processor`` for the classes that always
    set their own, whatever tokenizer.json holds.
    """

    model: str
    vocab_files: tuple
    defaults: dict
    pipeline: Callable
    post_processor: Callable | None = None


_METASPACE = "\u2581"
# Qwen2Tokenizer's split pattern (single digits), which it uses whatever tokenizer.json says.
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_ROBERTA_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "sep_token": "</s>",
    "cls_token": "<s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
}


def _byte_level_bpe(vocab, merges):
    return BPE(vocab, merges, dropout=None, continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False)


def _sentencepiece_decoder(strip_prefix):
    steps = [decoders.Replace(_METASPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
    return decoders.Sequence(steps + ([decoders.Strip(" ", 1, 0)] if strip_prefix else []))


def _bert_pipeline(vocab, merges, hf_config, special, upstream_json):
    backend = tokenizers.Tokenizer(WordPiece(vocab, unk_token=_token_content(special["unk_token"])))
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=hf_config.get("tokenize_chinese_chars", True),
        strip_accents=hf_config.get("strip_accents"),
        lowercase=hf_config.get("do_lower_case", True),
    )
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    return backend


def _bert_post_processor(backend, hf_config, special):
    cls_token, sep_token = _token_content(special["cls_token"]), _token_content(special["sep_token"])
    return processors.TemplateProcessing(
        single=f"{cls_token}:0 $A:0 {sep_token}:0",
        pair=f"{cls_token}:0 $A:0 {sep_token}:0 $B:1 {sep_token}:1",
        special_tokens=[(cls_token, backend.token_to_id(cls_token)), (sep_token, backend.token_to_id(sep_token))],
    )


def _gpt2_pipeline(vocab, merges, hf_config, special, upstream_json):
    backend = tokenizers.Tokenizer(_byte_level_bpe(vocab, merges))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=hf_config.get("add_prefix_space", False))
    backend.decoder = decoders.ByteLevel()
    return backend


def _roberta_post_processor(backend, hf_config, special):
    """``<s> A </s>`` (pairs: ``</s></s> B </s>``); the class honours the config's ``add_prefix_space``."""
    cls_token, sep_token = _token_content(special["cls_token"]), _token_content(special["sep_token"])
    return processors.RobertaProcessing(
        (sep_token, backend.token_to_id(sep_token)),
        (cls_token, backend.token_to_id(cls_token)),
        trim_offsets=hf_config.get("trim_offsets", True),
        add_prefix_space=hf_config.get("add_prefix_space", False),
    )


def _precompiled_charsmap(upstream_json):
    """The SentencePiece character map of tokenizer.json's normalizer, or ``None``."""
    normalizer = (upstream_json or {}).get("normalizer") or {}
    steps = normalizer.get("normalizers", []) if normalizer.get("type") == "Sequence" else [normalizer]
    for step in steps:
        if step.get("type") == "Precompiled" and "precompiled_charsmap" in step:
            return step["precompiled_charsmap"]
    return None


def _xlm_roberta_pipeline(vocab, merges, hf_config, special, upstream_json):
    """Unigram over whitespace-split words, "▁"-prefixed; of tokenizer.json's normalizer only the charsmap."""
    backend = tokenizers.Tokenizer(Unigram(vocab, unk_id=3, byte_fallback=False))
    charsmap = _precompiled_charsmap(upstream_json)
    if charsmap is not None:
        backend.normalizer = normalizers.Precompiled(base64.b64decode(charsmap))
    prepend_scheme = "always" if hf_config.get("add_prefix_space", True) else "never"
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(_METASPACE, prepend_scheme=prepend_scheme)]
    )
    backend.decoder = decoders.Metaspace(_METASPACE, prepend_scheme=prepend_scheme)
    return backend


def _xlm_roberta_post_processor(backend, hf_config, special):
    bos, eos = _token_content(special["bos_token"]), _token_content(special["eos_token"])
    return processors.TemplateProcessing(
        single=[bos, "$A", eos],
        pair=[bos, "$A", eos, eos, "$B", eos],
        special_tokens=[(bos, backend.token_to_id(bos)), (eos, backend.token_to_id(eos))],
    )


def _llama_pipeline(vocab, merges, hf_config, special, upstream_json):
    """Byte-fallback BPE (no unk token); "▁" replaces spaces and prefixes the text.

    Prefixed: only the text's start (``legacy: false``, the default), or every
    segment between special tokens (``legacy: true``); never with
    ``add_prefix_space: false``. tokenizer.json's normalizer is ignored.
    """
    add_prefix_space = hf_config.get("add_prefix_space")
    add_prefix_space = True if add_prefix_space is None else add_prefix_space
    if not add_prefix_space:
        prepend_scheme = "never"
    else:
        prepend_scheme = "always" if hf_config.get("legacy", False) else "first"
    backend = tokenizers.Tokenizer(BPE(vocab, merges, fuse_unk=True, byte_fallback=True, dropout=None))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(_METASPACE, prepend_scheme=prepend_scheme, split=False)
    backend.decoder = _sentencepiece_decoder(strip_prefix=add_prefix_space)
    return backend


def _gemma_pipeline(vocab, merges, hf_config, special, upstream_json):
    """Byte-fallback BPE; spaces become "▁" and nothing is prefixed."""
    unk_token = _token_content(special.get("unk_token"))
    model = BPE(vocab, merges, fuse_unk=True, unk_token=unk_token, dropout=None, byte_fallback=True)
    backend = tokenizers.Tokenizer(model)
    backend.normalizer = normalizers.Replace(" ", _METASPACE)
    backend.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous", invert=False)
    backend.decoder = _sentencepiece_decoder(strip_prefix=False)
    return backend


def _qwen2_pipeline(vocab, merges, hf_config, special, upstream_json):
    """NFC, then Qwen2's split pattern, then byte-level BPE."""
    backend = tokenizers.Tokenizer(_byte_level_bpe(vocab, merges))
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_QWEN2_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=bool(hf_config.get("add_prefix_space")), use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    return backend


_BPE_FILES = ("vocab.json", "merges.txt")
_BERT_TOKENS = {
    "unk_token": "[UNK]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "mask_token": "[MASK]",
}
_GPT2_TOKENS = {"unk_token": "<|endoftext|>", "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"}
_LLAMA_TOKENS = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}
_GEMMA_TOKENS = {
    "unk_token": "<unk>",
    "bos_token": "<bos>",
    "eos_token": "<eos>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
}
_QWEN2_TOKENS = {"unk_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}
_BERT = _Recipe("WordPiece", ("vocab.txt",), _BERT_TOKENS, _bert_pipeline, _bert_post_processor)
# Keyed by class name as ``_class_name`` gives it; the generic class has no recipe: it loads tokenizer.json whole.
_RECIPES = {
    "BertTokenizer": _BERT,
    "DistilBertTokenizer": _BERT,
    "GPT2Tokenizer": _Recipe("BPE", _BPE_FILES, _GPT2_TOKENS, _gpt2_pipeline),
    "RobertaTokenizer": _Recipe("BPE", _BPE_FILES, _ROBERTA_TOKENS, _gpt2_pipeline, _roberta_post_processor),
    "XLMRobertaTokenizer": _Recipe("Unigram", (), _ROBERTA_TOKENS, _xlm_roberta_pipeline, _xlm_roberta_post_processor),
    "LlamaTokenizer": _Recipe("BPE", (), _LLAMA_TOKENS, _llama_pipeline),
    "GemmaTokenizer": _Recipe("BPE", (), _GEMMA_TOKENS, _gemma_pipeline),
    "Qwen2Tokenizer": _Recipe("BPE", _BPE_FILES, _QWEN2_TOKENS, _qwen2_pipeline),
}


def _upstream_model(upstream_json, recipe, path):
    """``(vocab, merges)`` of tokenizer.json's model, checked against the model the class expects."""
    model = upstream_json.get("model") or {}
    kind = model.get("type")
    if kind is None:  # files written by old tokenizers versions omit the type
        kind = "Unigram" if isinstance(model.get("vocab"), list) else ("BPE" if "merges" in model else "WordPiece")
    if kind != recipe.model:
        raise PresetError(f"{path}/tokenizer.json holds a {kind} model, but its tokenizer class expects {recipe.model}")
    if kind == "Unigram":
        return [(piece, score) for piece, score in model["vocab"]], None
    vocab = model["vocab"]
    if kind == "WordPiece":
        return vocab, None
    merges = [tuple(merge.split(" ")) if isinstance(merge, str) else tuple(merge) for merge in model["merges"]]
    return vocab, merges


def _vocab_files_model(recipe, path, class_name):
    """``(vocab, merges)`` from ``vocab.txt`` or ``vocab.json`` + ``merges.txt``."""
    names = recipe.vocab_files
    if not names or not all((path / name).is_file() for name in names):
        wanted = " + ".join(names) if names else "tokenizer.json"
        raise PresetError(
            f"{path} has no tokenizer.json, and its {class_name} needs {wanted} to be rebuilt exactly; "
            "save the tokenizer with tokenizer.json."
        )
    if recipe.model == "WordPiece":
        return WordPiece.read_file(str(path / "vocab.txt")), None
    return BPE.read_file(str(path / "vocab.json"), str(path / "merges.txt"))


def _build(recipe, path, hf_config, upstream_text, upstream, class_name):
    """The tokenizer ``class_name`` builds: its pipeline over the checkpoint's vocabulary.

    ``upstream_text`` / ``upstream``: tokenizer.json as text and as loaded
    (both ``None`` without one).

    The post-processor is the class's own, else tokenizer.json's, else (vocab
    files only) ``bos``/``eos`` around the text as the config's
    ``add_bos_token``/``add_eos_token`` ask; transformers ignores those two
    keys when tokenizer.json exists.
    """
    upstream_json = json.loads(upstream_text) if upstream_text is not None else None
    special = _special_tokens(recipe.defaults, hf_config)
    if upstream_json is not None:
        vocab, merges = _upstream_model(upstream_json, recipe, path)
    else:
        vocab, merges = _vocab_files_model(recipe, path, class_name)
    backend = recipe.pipeline(vocab, merges, hf_config, special, upstream_json)
    if upstream is not None:
        backend.post_processor = upstream.post_processor
        if upstream.padding:
            backend.enable_padding(**upstream.padding)
        if upstream.truncation:
            backend.enable_truncation(**upstream.truncation)
    _add_hf_tokens(backend, hf_config, special)
    if recipe.post_processor is not None:
        backend.post_processor = recipe.post_processor(backend, hf_config, special)
    elif upstream is None:
        backend.post_processor = _bos_eos_template(backend, hf_config, special)
    return backend, special


def _bos_eos_template(backend, hf_config, special):
    """Nothing around the text unless the config's ``add_bos_token``/``add_eos_token`` ask for it."""
    bos, eos = _token_content(special.get("bos_token")), _token_content(special.get("eos_token"))
    add_bos = bool(hf_config.get("add_bos_token")) and bos is not None
    add_eos = bool(hf_config.get("add_eos_token")) and eos is not None
    single = " ".join([*([f"{bos}:0"] if add_bos else []), "$A:0", *([f"{eos}:0"] if add_eos else [])])
    pair = " ".join([single, *([f"{bos}:1"] if add_bos else []), "$B:1", *([f"{eos}:1"] if add_eos else [])])
    used = dict.fromkeys(token for token, on in ((bos, add_bos), (eos, add_eos)) if on)
    special_tokens = [(token, backend.token_to_id(token)) for token in used]
    return processors.TemplateProcessing(single=single, pair=pair, special_tokens=special_tokens)
