"""Every tokenizer kind of the supported families: identical ids to transformers' AutoTokenizer.

Fixtures are tiny tokenizers trained offline and written in each family's real
file layout (``tests/checkpoints.py``), plus the variants that make
transformers 5 build something other than what ``tokenizer.json`` says: its
model-specific classes keep only the vocabulary from the file and set the
pipeline themselves, from their defaults and ``tokenizer_config.json``.
"""

import json

import pytest
import tokenizers

from presetforge.checks.corpus import TOKENIZER_CORPUS
from presetforge.checks.tokenizer_parity import compare_tokenizers
from presetforge.errors import PresetError
from presetforge.tokenizers import Tokenizer
from tests.checkpoints import (
    CHARSMAP_RULES,
    write_distilbert_tokenizer,
    write_gemma_tokenizer,
    write_llama3_byte_bpe_tokenizer,
    write_qwen2_byte_bpe_tokenizer,
    write_roberta_bpe_tokenizer,
    write_sentencepiece_bpe_tokenizer,
    write_unigram_tokenizer,
)

transformers = pytest.importorskip("transformers")


def _edit_config(directory, **changes):
    """Change ``tokenizer_config.json`` (a ``None`` value removes the key)."""
    path = directory / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    config = {key: value for key, value in config.items() if value is not None}
    path.write_text(json.dumps(config))
    return directory


def _model_type(directory, model_type):
    (directory / "config.json").write_text(json.dumps({"model_type": model_type}))
    return directory


@pytest.fixture(scope="module")
def kind_dirs(tmp_path_factory):
    """Name → checkpoint directory; the keys are the parity test's parameters."""
    root = tmp_path_factory.mktemp("kinds")
    dirs = {
        # Llama 2: LlamaTokenizer, legacy: false. Its tokenizer.json prefixes every
        # segment between special tokens with "▁"; the class only the text's start.
        "llama2": write_sentencepiece_bpe_tokenizer(root / "llama2"),
        "gemma": write_gemma_tokenizer(root / "gemma"),
        "llama3": write_llama3_byte_bpe_tokenizer(root / "llama3"),
        "qwen2": write_qwen2_byte_bpe_tokenizer(root / "qwen2"),
        "roberta": write_roberta_bpe_tokenizer(root / "roberta"),
        "xlm_roberta": write_unigram_tokenizer(root / "xlm_roberta"),
        "distilbert": write_distilbert_tokenizer(root / "distilbert"),
    }
    # Mistral 7B: LlamaTokenizer with legacy: true, and config.json's model type makes it generic.
    mistral = _edit_config(write_sentencepiece_bpe_tokenizer(root / "mistral"), legacy=True)
    dirs["mistral"] = _model_type(mistral, "mistral")
    # The same files without config.json: LlamaTokenizer, prefixing every segment.
    dirs["llama_legacy"] = _edit_config(write_sentencepiece_bpe_tokenizer(root / "llama_legacy"), legacy=True)
    dirs["llama_no_prefix_space"] = _edit_config(
        write_sentencepiece_bpe_tokenizer(root / "llama_no_prefix_space"), add_prefix_space=False
    )
    # Phi-3 declares LlamaTokenizer; its model type maps to the generic class, which keeps the file whole.
    dirs["phi3"] = _model_type(write_sentencepiece_bpe_tokenizer(root / "phi3"), "phi3")
    # With tokenizer.json, transformers ignores add_bos_token / add_eos_token: the file's <s> stays.
    dirs["llama2_add_bos_false"] = _edit_config(
        write_sentencepiece_bpe_tokenizer(root / "llama2_add_bos_false"), add_bos_token=False, add_eos_token=True
    )
    dirs["gemma_model_type"] = _model_type(write_gemma_tokenizer(root / "gemma_model_type"), "gemma2")
    # Llama 3 derivatives that declare LlamaTokenizer over a byte-level file get the generic class.
    llama3 = write_llama3_byte_bpe_tokenizer(root / "llama3_declared_llama")
    dirs["llama3_declared_llama"] = _model_type(_edit_config(llama3, tokenizer_class="LlamaTokenizerFast"), "llama")
    # Qwen2Tokenizer builds its pre-tokenizer from the config's add_prefix_space; so it does for
    # a qwen2 model type whatever class the config declares.
    dirs["qwen2_add_prefix_space"] = _edit_config(
        write_qwen2_byte_bpe_tokenizer(root / "qwen2_add_prefix_space"), add_prefix_space=True
    )
    dirs["qwen2_declared_generic"] = _model_type(
        _edit_config(
            write_qwen2_byte_bpe_tokenizer(root / "qwen2_declared_generic"),
            tokenizer_class="PreTrainedTokenizerFast",
            add_prefix_space=True,
        ),
        "qwen2",
    )
    dirs["roberta_add_prefix_space"] = _edit_config(
        write_roberta_bpe_tokenizer(root / "roberta_add_prefix_space"), add_prefix_space=True
    )
    # roberta-base's layout: no tokenizer_config.json, so <mask>'s lstrip comes from tokenizer.json.
    base = _model_type(write_roberta_bpe_tokenizer(root / "roberta_base_layout"), "roberta")
    (base / "tokenizer_config.json").unlink()
    dirs["roberta_base_layout"] = base
    vocab_only = write_roberta_bpe_tokenizer(root / "roberta_vocab_files")
    (vocab_only / "tokenizer.json").unlink()
    dirs["roberta_vocab_files"] = vocab_only
    dirs["xlm_roberta_no_prefix_space"] = _edit_config(
        write_unigram_tokenizer(root / "xlm_roberta_no_prefix_space"), add_prefix_space=False
    )
    # distilbert-base-uncased's layout: the class comes from the model type, and builds its
    # normalizer from the config (here cased) whatever tokenizer.json says (uncased).
    dirs["distilbert_cased_config"] = _model_type(
        write_distilbert_tokenizer(root / "distilbert_cased_config", {"do_lower_case": False}), "distilbert"
    )
    return dirs


CASES = (
    "llama2",
    "mistral",
    "llama_legacy",
    "llama_no_prefix_space",
    "phi3",
    "llama2_add_bos_false",
    "gemma",
    "gemma_model_type",
    "llama3",
    "llama3_declared_llama",
    "qwen2",
    "qwen2_add_prefix_space",
    "qwen2_declared_generic",
    "roberta",
    "roberta_add_prefix_space",
    "roberta_base_layout",
    "roberta_vocab_files",
    "xlm_roberta",
    "xlm_roberta_no_prefix_space",
    "distilbert",
    "distilbert_cased_config",
)


def _hf(directory):
    return transformers.AutoTokenizer.from_pretrained(str(directory))


@pytest.mark.parametrize("name", CASES)
def test_ids_identical_to_hf_through_a_preset(kind_dirs, tmp_path, name):
    directory = kind_dirs[name]
    hf = _hf(directory)
    Tokenizer.from_hf_dir(directory).save_to_preset(tmp_path / "preset")
    ours = Tokenizer.from_preset(tmp_path / "preset")
    texts = list(TOKENIZER_CORPUS)
    for add_special_tokens in (True, False):
        expected = [hf(text, add_special_tokens=add_special_tokens)["input_ids"] for text in texts]
        for text, ids in zip(texts, expected):
            assert ours.tokenize(text, add_special_tokens=add_special_tokens) == ids, f"{name}: {text!r}"
    assert ours.vocabulary_size == len(hf)
    result = compare_tokenizers(tmp_path / "preset", directory)
    assert result.checked and result.passed and result.texts == len(TOKENIZER_CORPUS), result.mismatches


@pytest.mark.parametrize("name", CASES)
def test_saved_pipeline_is_the_one_transformers_builds(kind_dirs, name):
    """Beyond the corpus: normalizer, pre-tokenizer, model options, added tokens, post-processor, decoder."""
    hf = _hf(kind_dirs[name])
    ours = Tokenizer.from_hf_dir(kind_dirs[name])
    assert json.loads(ours._json) == json.loads(hf.backend_tokenizer.to_str())


def _file_ids(directory, text):
    """What tokenizer.json alone gives, added tokens and post-processor included."""
    return tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json")).encode(text).ids


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("llama2", "<s>[INST] Hi"),  # the class adds no "▁" after a special token
        ("llama2", "   leading"),  # nor before text that starts with spaces
        ("llama_no_prefix_space", "Hello"),
        ("xlm_roberta", "tabs\tand\nnew lines"),  # the class splits on every whitespace
        ("qwen2_add_prefix_space", "Hello"),
        ("roberta_add_prefix_space", "Hello"),
        ("distilbert_cased_config", "Hello"),
    ],
)
def test_fixtures_differ_from_their_tokenizer_json_where_the_class_rebuilds(kind_dirs, name, text):
    """The variants above are real tests: their file alone gives other ids than transformers."""
    directory = kind_dirs[name]
    expected = _hf(directory)(text)["input_ids"]
    assert _file_ids(directory, text) != expected
    assert Tokenizer.from_hf_dir(directory)(text) == expected


def test_fixtures_cover_each_kinds_hard_cases(kind_dirs):
    llama = Tokenizer.from_hf_dir(kind_dirs["llama2"])
    ids = llama("snow \u2603 \U0001d518", add_special_tokens=False)
    assert any(llama.id_to_token(i).startswith("<0x") for i in ids)  # byte fallback, not <unk>
    assert llama.token_to_id("<unk>") not in ids
    assert llama.detokenize(ids) == "snow \u2603 \U0001d518"
    gemma = Tokenizer.from_hf_dir(kind_dirs["gemma"])
    assert gemma("hi")[0] == gemma.token_to_id("<bos>")
    llama3 = Tokenizer.from_hf_dir(kind_dirs["llama3"])
    assert llama3("<|eot_id|>hi")[:2] == [llama3.token_to_id("<|begin_of_text|>"), llama3.token_to_id("<|eot_id|>")]
    qwen2 = Tokenizer.from_hf_dir(kind_dirs["qwen2"])
    assert qwen2("<|im_start|>user", add_special_tokens=True)[0] == qwen2.token_to_id("<|im_start|>")
    roberta = Tokenizer.from_hf_dir(kind_dirs["roberta_base_layout"])
    mask = roberta.token_to_id("<mask>")
    assert roberta("a <mask>") == [roberta.token_to_id("<s>"), *roberta("a", add_special_tokens=False), mask, 2]
    xlmr = Tokenizer.from_hf_dir(kind_dirs["xlm_roberta"])
    assert CHARSMAP_RULES["\ufb01"] == "fi"
    assert xlmr("\ufb01x", add_special_tokens=False) == xlmr("fix", add_special_tokens=False)
    assert xlmr("x")[0] == xlmr.token_to_id("<s>") and xlmr("x")[-1] == xlmr.token_to_id("</s>")


def test_generic_class_keeps_the_upstream_file_byte_for_byte(kind_dirs):
    for name in ("llama3", "mistral", "phi3"):
        ours = Tokenizer.from_hf_dir(kind_dirs[name])
        assert ours._json == (kind_dirs[name] / "tokenizer.json").read_text(encoding="utf-8"), name


def test_classes_that_need_tokenizer_json_refuse_vocab_files_alone(tmp_path, kind_dirs):
    xlmr = tmp_path / "xlmr"
    xlmr.mkdir()
    (xlmr / "sentencepiece.bpe.model").write_bytes(b"\x00")
    (xlmr / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "XLMRobertaTokenizer"}))
    with pytest.raises(PresetError, match="XLMRobertaTokenizer needs tokenizer.json"):
        Tokenizer.from_hf_dir(xlmr)
    llama = tmp_path / "llama"
    llama.mkdir()
    for name in ("vocab.json", "merges.txt"):
        (llama / name).write_bytes((kind_dirs["roberta_vocab_files"] / name).read_bytes())
    (llama / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer"}))
    with pytest.raises(PresetError, match="LlamaTokenizer needs tokenizer.json"):
        Tokenizer.from_hf_dir(llama)


def test_a_model_the_class_cannot_read_is_refused(tmp_path, kind_dirs):
    directory = tmp_path / "mismatch"
    directory.mkdir()
    (directory / "tokenizer.json").write_bytes((kind_dirs["xlm_roberta"] / "tokenizer.json").read_bytes())
    (directory / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GemmaTokenizer"}))
    with pytest.raises(PresetError, match="holds a Unigram model, but its tokenizer class expects BPE"):
        Tokenizer.from_hf_dir(directory)
