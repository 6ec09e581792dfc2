"""The nightly scenario's pieces: tiny presets of three families published on the stand-in hub
(a catalog whose gpt2, bert and llama presets are pinned to tiny upstream checkpoints served by
the stand-in, converted, checked, published and recorded by the real pipeline), a doctored
publication, an upstream that moves on, and the nightly workflow's plan."""

import datetime
import json

import h5py
import numpy as np
import transformers

from click.testing import CliRunner

from presetforge import preset
from presetforge.cli import main
from presetforge.pipeline import push
from presetforge.registry import catalog, hf
from tests.checkpoints import make_bert, make_causal_lm, make_gpt2, write_sentencepiece_bpe_tokenizer

PUBLISHED = ("gpt2_base_en", "bert_tiny_en_uncased", "llama2_7b_en")
UNPUBLISHED = "gpt2_medium_en"
# The first block's key kernel in the weights file; the weight check calls it by its variable's path.
TAMPERED_VARIABLE = "layers/transformer_block/self_attention/key/vars/0"
TAMPERED_NAME = "transformer_layer_0/self_attention/key/kernel"


def _tiny_llama(directory, seed):
    write_sentencepiece_bpe_tokenizer(directory)
    vocabulary = len(transformers.AutoTokenizer.from_pretrained(directory))
    return make_causal_lm(
        directory, "llama", seed=seed, vocab_size=vocabulary, hidden_size=32, intermediate_size=48,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
    )


UPSTREAMS = {
    "gpt2_base_en": lambda d, seed: make_gpt2(d, tokenizer=True, seed=seed),
    "bert_tiny_en_uncased": lambda d, seed: make_bert(d, tokenizer=True, seed=seed),
    "llama2_7b_en": _tiny_llama,
}


def publish_trio(tmp_path, monkeypatch):
    """A catalog (``PRESETFORGE_CATALOG``) of the three presets, published to ``hf://standin/<name>``
    and pinned, plus one unpublished; the catalog file's path."""
    data = json.loads(catalog.PACKAGED_CATALOG.read_text())
    data["presets"] = {name: data["presets"][name] for name in (*PUBLISHED, UNPUBLISHED)}
    for seed, name in enumerate(PUBLISHED):
        entry = data["presets"][name]
        upstream = UPSTREAMS[name](tmp_path / "upstream" / name, seed)
        entry["source"]["revision"] = hf.upload(upstream, entry["source"]["handle"][len("hf://"):], "upstream")
        entry["targets"] = [f"hf://standin/{name}"]
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(data))
    monkeypatch.setenv("PRESETFORGE_CATALOG", str(path))
    for name in PUBLISHED:
        result = push.push_one(name, tmp_path / "work")
        assert result.status == "published", result
    return path


def tamper_published(standin_hub, name, work, variable=TAMPERED_VARIABLE):
    """Change one weight element of the published ``name`` on its hub (edited in the directory
    ``work``), rewrite its manifest to match, and record that manifest as the catalog's pin: the
    copy is then exactly what the catalog names, so only the weight check can tell."""
    repo_id = f"standin/{name}"
    for path, data in standin_hub.hf.files(repo_id).items():
        if path != ".gitattributes":
            (work / path).parent.mkdir(parents=True, exist_ok=True)
            (work / path).write_bytes(data)
    with h5py.File(work / preset.WEIGHTS_FILE, "r+") as f:
        values = f[variable][...]
        values[(0,) * values.ndim] += np.float32(0.25)
        f[variable][...] = values
    preset.write_json(work / preset.MANIFEST_FILE, preset.build_manifest(work))
    changed = {n: (work / n).read_bytes() for n in (preset.WEIGHTS_FILE, preset.MANIFEST_FILE)}
    commit = standin_hub.hf.put_files(repo_id, changed, message="doctored")
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    catalog.record_published(name, f"hf://{repo_id}@{commit}", preset.sha256_file(work / preset.MANIFEST_FILE), date)


def move_upstream_head(standin_hub, name):
    """A new commit on the default branch of ``name``'s upstream repo; its sha."""
    repo_id = catalog.entry(name)["source"]["handle"][len("hf://"):]
    return standin_hub.hf.put_files(repo_id, {"README.md": b"# a newer upstream commit\n"}, message="upstream moves on")


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def plan(listing):
    """The nightly plan: the presets of `presetforge list --json` that have a publication to check."""
    return [name for name, entry in json.loads(listing).items() if entry["published"]]
