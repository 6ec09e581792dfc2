"""``Tokenizer``: a thin wrapper over the Rust ``tokenizers`` library, saved as a preset asset.

The HF fast-tokenizer file (``tokenizer.json``) already describes the whole
pipeline (normalizer, pre-tokenizer, model, special tokens, post-processor),
so presetforge stores that file verbatim as ``assets/tokenizer/tokenizer.json``
and keeps only what it does not hold (the roles of the special tokens) in the
preset's root ``tokenizer.json``. Ids are then identical to the HF fast
tokenizer's by construction; ``from_hf_dir`` rebuilds that file the way
``transformers`` does when a checkpoint ships only ``vocab.txt`` or
``vocab.json`` + ``merges.txt``.
"""

import json
from pathlib import Path

import numpy as np
import tokenizers
from tokenizers import AddedToken, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE, WordPiece

from presetforge import preset
from presetforge.errors import PresetError
from presetforge.registry import handles

ASSET_FILE = "assets/tokenizer/tokenizer.json"
REGISTERED_NAME = "presetforge>Tokenizer"

# The named special tokens of transformers, in the order it adds them to the
# vocabulary (the order matters when a token is missing and gets a new id).
SPECIAL_TOKEN_ROLES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")

# Tokenizer classes (``tokenizer_class`` in tokenizer_config.json, or the
# ``model_type`` of config.json) whose vocab-file layout ``from_hf_dir`` rebuilds
# exactly. Anything else needs its ``tokenizer.json``: guessing would give
# silently different ids.
_FAMILY_BY_CLASS = {
    "BertTokenizer": "wordpiece",
    "BertTokenizerFast": "wordpiece",
    "GPT2Tokenizer": "byte_bpe",
    "GPT2TokenizerFast": "byte_bpe",
}
_FAMILY_BY_MODEL_TYPE = {"bert": "wordpiece", "gpt2": "byte_bpe"}
# The special tokens each class has when its config names none.
_DEFAULT_SPECIAL_TOKENS = {
    "wordpiece": {
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
    },
    "byte_bpe": {"unk_token": "<|endoftext|>", "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"},
}

# Every file of an HF checkpoint that can shape its tokenizer (for provenance hashes).
HF_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
)

_PAD_FALLBACKS = ("[PAD]", "<pad>")
_EOS_FALLBACKS = ("<|endoftext|>", "</s>")


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


def hf_dir_has_tokenizer(path):
    """Whether an HF checkpoint directory ships tokenizer files at all."""
    return any((Path(path) / name).is_file() for name in ("tokenizer.json", "vocab.txt", "vocab.json"))


class Tokenizer:
    """Text ↔ token ids, exactly as the HF fast tokenizer of the checkpoint does it.

    Build one with ``from_hf_dir`` (an upstream checkpoint), ``from_preset`` (a
    presetforge preset) or directly from a ``tokenizer.json`` path or a
    ``tokenizers.Tokenizer``. ``special_tokens`` maps HF role names
    (``pad_token``, ``eos_token``, …) to token strings; it is informational,
    except that ``pad`` uses it to find the padding id.
    """

    def __init__(self, tokenizer, special_tokens=None):
        if isinstance(tokenizer, tokenizers.Tokenizer):
            self._json = tokenizer.to_str()
        elif isinstance(tokenizer, (str, Path)):
            path = Path(tokenizer)
            if path.is_dir():
                raise PresetError(
                    f"{path} is a directory; use Tokenizer.from_hf_dir for a checkpoint "
                    "or Tokenizer.from_preset for a preset"
                )
            # Kept verbatim so the saved asset is byte-identical to the upstream file.
            self._json = path.read_bytes().decode("utf-8")
        else:
            raise TypeError(
                f"expected a tokenizer.json path or a tokenizers.Tokenizer, got {type(tokenizer).__name__}"
            )
        self.special_tokens = {k: v for k, v in (special_tokens or {}).items() if v is not None}
        # A private working copy: tokenizer.json may bake in padding and truncation
        # (all-MiniLM pads to 128), which the HF tokenizer ignores unless asked.
        self.backend = tokenizers.Tokenizer.from_str(self._json)
        padding = self.backend.padding
        self._padding_pad_id = padding["pad_id"] if padding else None
        self.backend.no_padding()
        self.backend.no_truncation()

    # -- construction --------------------------------------------------------

    @classmethod
    def from_hf_dir(cls, path):
        """The tokenizer ``transformers.AutoTokenizer.from_pretrained(path)`` would build.

        Prefers ``tokenizer.json``; otherwise rebuilds a WordPiece (BERT,
        ``vocab.txt``) or byte-level BPE (GPT-2, ``vocab.json`` + ``merges.txt``)
        tokenizer with the same normalization, special tokens and
        post-processing, honouring ``tokenizer_config.json``.
        """
        path = Path(path)
        if not path.is_dir():
            raise PresetError(f"{path} is not a directory")
        hf_config = _read_hf_config(path)
        tokenizer_json = path / "tokenizer.json"
        if tokenizer_json.is_file():
            backend = tokenizers.Tokenizer.from_file(str(tokenizer_json))
            before = backend.to_str()
            special = _special_tokens(_family(path, hf_config), hf_config)
            _add_hf_tokens(backend, hf_config, special)
            # Untouched: keep the upstream file byte for byte.
            source = tokenizer_json if backend.to_str() == before else backend
            return cls(source, special_tokens=_contents(special))
        family = _family(path, hf_config)
        if family == "wordpiece" and (path / "vocab.txt").is_file():
            backend, special = _build_wordpiece(path, hf_config)
        elif family == "byte_bpe" and (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
            backend, special = _build_byte_bpe(path, hf_config)
        else:
            raise PresetError(
                f"{path} has no tokenizer.json, and its tokenizer "
                f"({hf_config.get('tokenizer_class') or _model_type(path) or 'of unknown class'}) cannot be "
                "rebuilt exactly from its files; presetforge rebuilds BERT (vocab.txt) and GPT-2 "
                "(vocab.json + merges.txt) tokenizers only. Save the tokenizer with tokenizer.json."
            )
        return cls(backend, special_tokens=_contents(special))

    @classmethod
    def from_preset(cls, preset_handle):
        """The tokenizer saved in a preset (a handle, as for ``Backbone.from_preset``)."""
        root = handles.resolve(preset_handle)
        preset.verify(root)
        if not (Path(root) / preset.TOKENIZER_CONFIG_FILE).is_file():
            raise PresetError(f"{root} holds no tokenizer ({preset.TOKENIZER_CONFIG_FILE} is missing)")
        serialized = preset.read_json(root, preset.TOKENIZER_CONFIG_FILE)
        if not isinstance(serialized, dict) or serialized.get("registered_name") != REGISTERED_NAME:
            name = serialized.get("registered_name") if isinstance(serialized, dict) else None
            raise PresetError(f"{root}/{preset.TOKENIZER_CONFIG_FILE} is not a presetforge tokenizer ({name!r})")
        asset = Path(root) / ASSET_FILE
        if not asset.is_file():
            raise PresetError(f"{root} describes a tokenizer but its asset {ASSET_FILE} is missing")
        return cls.from_config(serialized.get("config", {}), asset)

    def get_config(self):
        """What the root ``tokenizer.json`` holds besides the asset: the special-token roles."""
        return {"special_tokens": dict(self.special_tokens)}

    @classmethod
    def from_config(cls, config, asset_path):
        return cls(asset_path, **config)

    def save_to_preset(self, preset_dir):
        """Write the tokenizer into ``preset_dir`` atomically, keeping a backbone already there."""
        with preset.writing(preset_dir) as stage:
            self.write_to(stage)

    def write_to(self, stage):
        """Write the tokenizer's files into an open ``preset.writing`` stage.

        For writers that add it in their own transaction (a converter), so
        backbone and tokenizer land in one atomic rename.
        """
        serialized = {
            "module": type(self).__module__,
            "class_name": type(self).__name__,
            "config": self.get_config(),
            "registered_name": REGISTERED_NAME,
        }
        stage.remove(str(Path(ASSET_FILE).parent / "*"))  # no stale asset from an older tokenizer
        preset.write_json(stage.file(preset.TOKENIZER_CONFIG_FILE), serialized)
        stage.file(ASSET_FILE).write_bytes(self._json.encode("utf-8"))

    # -- use -----------------------------------------------------------------

    def tokenize(self, text, add_special_tokens=True):
        """Token ids: ``list[int]`` for a string, ``list[list[int]]`` for a list of strings.

        Never truncated or padded (as the HF tokenizer called without options);
        use ``pad`` to batch.
        """
        if isinstance(text, str):
            return self.backend.encode(text, add_special_tokens=add_special_tokens).ids
        if isinstance(text, (list, tuple)) and all(isinstance(t, str) for t in text):
            return [e.ids for e in self.backend.encode_batch(list(text), add_special_tokens=add_special_tokens)]
        raise TypeError("tokenize expects a string or a list of strings")

    __call__ = tokenize

    def detokenize(self, ids, skip_special_tokens=False):
        """Text from ids: a str for one sequence, a list of str for a batch (lists or numpy).

        Special tokens are kept by default, as ``transformers``' ``decode`` does.
        """
        if isinstance(ids, np.ndarray):
            ids = ids.tolist()
        ids = list(ids)
        if ids and all(isinstance(seq, (list, tuple, np.ndarray)) for seq in ids):
            batch = [[int(i) for i in seq] for seq in ids]
            return self.backend.decode_batch(batch, skip_special_tokens=skip_special_tokens)
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    @property
    def vocabulary_size(self):
        """Number of ids, added tokens included (``len()`` of the HF tokenizer)."""
        return self.backend.get_vocab_size(with_added_tokens=True)

    def token_to_id(self, token):
        """The id of ``token``, or ``None`` if it is not in the vocabulary."""
        return self.backend.token_to_id(token)

    def id_to_token(self, token_id):
        """The token of ``token_id``, or ``None`` if it is out of range."""
        return self.backend.id_to_token(int(token_id))

    @property
    def pad_id(self):
        """The id ``pad`` fills with: padding config, then pad token, then ``[PAD]``/eos.

        ``None`` when the tokenizer knows none. Padded positions are masked out,
        so the choice never changes a backbone's outputs; it only has to be a valid id.
        """
        if self._padding_pad_id is not None:
            return self._padding_pad_id
        candidates = (
            self.special_tokens.get("pad_token"),
            *_PAD_FALLBACKS,
            self.special_tokens.get("eos_token"),
            *_EOS_FALLBACKS,
        )
        for token in candidates:
            if token is not None and self.token_to_id(token) is not None:
                return self.token_to_id(token)
        return None

    def pad(self, batch_ids, sequence_length=None, pad_id=None):
        """Right-pad ids into ``(token_ids, padding_mask)`` int32 arrays of shape ``(batch, length)``.

        Ready for ``backbone({"token_ids": ..., "padding_mask": ...})``. The
        length defaults to the longest sequence; a sequence longer than
        ``sequence_length`` is an error, never silently cut. A flat list of
        ints is a batch of one.
        """
        if isinstance(batch_ids, np.ndarray):
            batch_ids = batch_ids.tolist()
        batch_ids = list(batch_ids)
        if batch_ids and not isinstance(batch_ids[0], (list, tuple, np.ndarray)):
            batch_ids = [batch_ids]
        longest = max((len(seq) for seq in batch_ids), default=0)
        length = longest if sequence_length is None else sequence_length
        if longest > length:
            raise ValueError(f"a sequence has {longest} tokens, more than sequence_length={length}")
        if pad_id is None:
            pad_id = self.pad_id
            if pad_id is None:
                raise ValueError("this tokenizer has no pad, [PAD] or eos token; pass pad_id explicitly")
        token_ids = np.full((len(batch_ids), length), pad_id, dtype="int32")
        padding_mask = np.zeros((len(batch_ids), length), dtype="int32")
        for row, seq in enumerate(batch_ids):
            token_ids[row, : len(seq)] = seq
            padding_mask[row, : len(seq)] = 1
        return token_ids, padding_mask

    def __repr__(self):
        model = type(self.backend.model).__name__
        return f"<Tokenizer {model} vocabulary_size={self.vocabulary_size}>"


# -- rebuilding HF fast tokenizers from vocab files --------------------------


def _contents(special):
    """Role → token text, for the roles that have a token."""
    return {role: _token_content(value) for role, value in special.items() if _token_content(value) is not None}


def _read_hf_config(path):
    """``tokenizer_config.json``, with the legacy files merged in the way transformers merges them.

    A config written by transformers >= 4.34 lists every added token
    (``added_tokens_decoder``) and is complete. Older checkpoints spread that
    over ``special_tokens_map.json`` (it overrides the config) and
    ``added_tokens.json`` (tokens not named special there are normalized).
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
    return config


def _model_type(path):
    return _read_optional_json(path / "config.json").get("model_type")


def _family(path, hf_config):
    """``"wordpiece"`` (BERT), ``"byte_bpe"`` (GPT-2) or ``None``, as AutoTokenizer picks the class.

    ``tokenizer_class`` decides; without it, config.json's ``model_type``; with
    neither, the vocab files present.
    """
    declared = hf_config.get("tokenizer_class")
    if declared is not None:
        return _FAMILY_BY_CLASS.get(declared)
    model_type = _model_type(path)
    if model_type is not None:
        return _FAMILY_BY_MODEL_TYPE.get(model_type)
    if (path / "vocab.txt").is_file():
        return "wordpiece"
    if (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
        return "byte_bpe"
    return None


def _extra_special(hf_config):
    """The config's extra special tokens (v5 ``extra_special_tokens``, or v4 ``additional_special_tokens``)."""
    extra = hf_config.get("extra_special_tokens") or hf_config.get("additional_special_tokens") or []
    return list(extra.values()) if isinstance(extra, dict) else list(extra)


def _special_tokens(family, hf_config):
    """Role → token (string or AddedToken dict): the class defaults, overridden by the config."""
    special = dict(_DEFAULT_SPECIAL_TOKENS.get(family, {}))
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


def _build_wordpiece(path, hf_config):
    """A BERT WordPiece tokenizer from ``vocab.txt``, as transformers' ``BertTokenizer`` builds it."""
    special = _special_tokens("wordpiece", hf_config)
    vocab = WordPiece.read_file(str(path / "vocab.txt"))
    backend = tokenizers.Tokenizer(WordPiece(vocab, unk_token=_token_content(special["unk_token"])))
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=hf_config.get("tokenize_chinese_chars", True),
        strip_accents=hf_config.get("strip_accents"),
        lowercase=hf_config.get("do_lower_case", True),
    )
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    _add_hf_tokens(backend, hf_config, special)
    cls_token, sep_token = _token_content(special["cls_token"]), _token_content(special["sep_token"])
    backend.post_processor = processors.TemplateProcessing(
        single=f"{cls_token}:0 $A:0 {sep_token}:0",
        pair=f"{cls_token}:0 $A:0 {sep_token}:0 $B:1 {sep_token}:1",
        special_tokens=[(cls_token, backend.token_to_id(cls_token)), (sep_token, backend.token_to_id(sep_token))],
    )
    return backend, special


def _build_byte_bpe(path, hf_config):
    """A GPT-2 byte-level BPE tokenizer from ``vocab.json`` + ``merges.txt``, as transformers builds it."""
    special = _special_tokens("byte_bpe", hf_config)
    vocab, merges = BPE.read_file(str(path / "vocab.json"), str(path / "merges.txt"))
    backend = tokenizers.Tokenizer(
        BPE(vocab, merges, dropout=None, continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False)
    )
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=hf_config.get("add_prefix_space", False))
    backend.decoder = decoders.ByteLevel()
    _add_hf_tokens(backend, hf_config, special)
    # GPT-2 adds nothing around the text unless the config asks for bos/eos.
    bos, eos = _token_content(special.get("bos_token")), _token_content(special.get("eos_token"))
    add_bos = bool(hf_config.get("add_bos_token")) and bos is not None
    add_eos = bool(hf_config.get("add_eos_token")) and eos is not None
    single = " ".join([*([f"{bos}:0"] if add_bos else []), "$A:0", *([f"{eos}:0"] if add_eos else [])])
    pair = " ".join([single, *([f"{bos}:1"] if add_bos else []), "$B:1", *([f"{eos}:1"] if add_eos else [])])
    used = dict.fromkeys(token for token, on in ((bos, add_bos), (eos, add_eos)) if on)
    backend.post_processor = processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=[(t, backend.token_to_id(t)) for t in used]
    )
    return backend, special
