"""``Tokenizer``: a thin wrapper over the Rust ``tokenizers`` library, saved as a preset asset.

The HF fast-tokenizer file (``tokenizer.json``) describes a whole pipeline
(normalizer, pre-tokenizer, model, special tokens, post-processor), and
presetforge stores such a file as ``assets/tokenizer/tokenizer.json``, keeping
only what it does not hold (the roles of the special tokens) in the preset's
root ``tokenizer.json``. ``from_hf_dir`` builds that file the way
``transformers.AutoTokenizer`` builds its tokenizer, so ids are identical:
the generic class loads the upstream ``tokenizer.json`` whole (kept byte for
byte), while the model-specific classes of transformers 5 (BERT, GPT-2,
RoBERTa, XLM-R, Llama, Gemma, Qwen2) take only the vocabulary from it, or
from ``vocab.txt`` / ``vocab.json`` + ``merges.txt``, and set the rest of the
pipeline themselves.
"""

from pathlib import Path

import numpy as np
import tokenizers

from presetforge import preset
from presetforge.errors import PresetError
from presetforge.registry import handles
from presetforge.tokenizers import hf_pipeline

ASSET_FILE = "assets/tokenizer/tokenizer.json"
REGISTERED_NAME = "presetforge>Tokenizer"

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

    # ``checkpoint_dir -> preset_dir`` for a raw Hugging Face checkpoint given to ``from_preset``; set
    # from the layer that has the converters (``presetforge.Tokenizer`` sets it on first use).
    convert_checkpoint = None

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
        """The tokenizer ``transformers.AutoTokenizer.from_pretrained(path)`` builds, with its ids.

        Reads ``tokenizer.json`` and, for the classes that build their own
        pipeline, the vocab files when there is no ``tokenizer.json``;
        ``tokenizer_config.json`` (and the legacy special-token files) name
        the class, its options and the special tokens; ``config.json``'s
        ``model_type`` takes part in choosing the class, as in transformers.
        """
        source, special_tokens = hf_pipeline.hf_tokenizer(Path(path))
        return cls(source, special_tokens=special_tokens)

    @classmethod
    def from_preset(cls, preset_handle):
        """The tokenizer saved in a preset (a handle, as for ``Backbone.from_preset``)."""
        root = handles.resolve(preset_handle, cls.convert_checkpoint)
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


