"""Tokenizer parity: the preset's tokenizer must give the HF fast tokenizer's ids, text for text."""

from presetforge import preset
from presetforge.checks.corpus import TOKENIZER_CORPUS
from presetforge.checks.report import TokenizerResult


def compare_tokenizers(preset_dir, reference_dir, corpus=TOKENIZER_CORPUS):
    """Compare ids on ``corpus``; a side without a tokenizer is reported as not checked."""
    from transformers import AutoTokenizer

    from presetforge.tokenizers import Tokenizer, hf_dir_has_tokenizer

    if not (preset_dir / preset.TOKENIZER_CONFIG_FILE).is_file():
        return TokenizerResult(checked=False, passed=False, reason="the preset has no tokenizer")
    if not hf_dir_has_tokenizer(reference_dir):
        return TokenizerResult(checked=False, passed=False, reason="the reference has no tokenizer")
    ours = Tokenizer.from_preset(preset_dir)
    theirs = AutoTokenizer.from_pretrained(reference_dir)
    mismatches = []
    for text in corpus:
        expected = list(theirs(text)["input_ids"])
        got = ours.tokenize(text)
        if got != expected:
            mismatches.append({"text": text, "expected": expected[:32], "got": got[:32]})
    return TokenizerResult(checked=True, passed=not mismatches, texts=len(corpus), mismatches=mismatches)
