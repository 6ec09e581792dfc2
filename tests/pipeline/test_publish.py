"""Publishing: only verified presets leave, each hub is told once, only confirmed versions are recorded.

A target failing while another succeeds, and rejected credentials, are fault rows (tests/faults/test_hubs.py).
"""

import re
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from presetforge import Backbone, PresetforgeError, UnauthorizedError
from presetforge.checks import parity, report as report_lib
from presetforge.cli import main
from presetforge.converters import convert
from presetforge.pipeline import publish
from presetforge.registry import transfers
from tests.backbones.tiny import inputs, outputs
from tests.checkpoints import make_gpt2
from tests.registry.test_hub import files_of
from tests.verified import verified_preset

HF_TARGET = "hf://standin/tiny-gpt2"
KAGGLE_TARGET = "kaggle://standin/tiny-gpt2/keras/base"


@pytest.fixture(scope="module")
def verified_master(tmp_path_factory):
    return verified_preset(tmp_path_factory.mktemp("verified"))[1]


@pytest.fixture
def verified(verified_master, tmp_path):
    """A private copy of a verified tiny GPT-2 preset, model card included."""
    return shutil.copytree(verified_master, tmp_path / "tiny-gpt2")


def _same_outputs(a, b):
    x = inputs("gpt2")
    for left, right in zip(outputs(Backbone.from_preset(a), x), outputs(Backbone.from_preset(b), x)):
        np.testing.assert_array_equal(left, right)


def _snapshot(root):
    """Every file of a directory with its bytes, and its modification time: what 'unchanged' means."""
    return {p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


def test_publish_to_both_hubs_and_load_back_bitwise(standin_hub, verified, tmp_path):
    before = _snapshot(verified)
    outcomes = publish.publish(verified, [HF_TARGET, KAGGLE_TARGET, str(tmp_path / "registry")])
    assert _snapshot(verified) == before  # publishing reads the verified preset, never writes it
    assert [o.status for o in outcomes] == ["published", "published", "published"]
    commit = outcomes[0].handle.rsplit("@", 1)[1]
    assert standin_hub.hf.head("standin/tiny-gpt2") == commit
    assert outcomes[1].handle == f"{KAGGLE_TARGET}/1"

    _same_outputs(verified, HF_TARGET)
    _same_outputs(verified, f"{KAGGLE_TARGET}/1")
    # Every target holds exactly the verified bytes, model card included.
    files = {name: data for name, (data, _) in before.items()}
    assert {n: d for n, d in standin_hub.hf.files("standin/tiny-gpt2").items() if n != ".gitattributes"} == files
    assert standin_hub.kaggle.files("standin", "tiny-gpt2", "keras", "base") == files
    assert {n: d for n, (d, _) in _snapshot(tmp_path / "registry/local/tiny-gpt2/tiny-gpt2/1").items()} == files
    card = files["README.md"].decode()
    assert card.startswith("---\nlibrary_name: keras\nlicense: other\n")
    assert "Parity verified against transformers.GPT2LMHeadModel" in card and "| logits |" in card


def test_second_publish_uploads_nothing_and_new_versions_carry_notes(standin_hub, verified):
    publish.publish(verified, [HF_TARGET, KAGGLE_TARGET])
    uploads_before = len(standin_hub.log)
    again = publish.publish(verified, [HF_TARGET, KAGGLE_TARGET])
    assert [o.status for o in again] == ["up to date", "up to date"]
    writes = [r for r in standin_hub.log[uploads_before:] if any(w in r[1] for w in ("commit", "Upload", "Create"))]
    assert writes == []
    assert standin_hub.kaggle.versions("standin", "tiny-gpt2", "keras", "base") == [1]

    # Re-verified weights of another model make a new Kaggle version whose notes carry the summary.
    other = make_gpt2(verified.parent / "hf2", seed=3, tokenizer=True)
    convert(other, verified)
    report_lib.write(verified, parity.check(verified, other))
    assert [o.status for o in publish.publish(verified, [KAGGLE_TARGET])] == ["published"]
    model = standin_hub.kaggle.models[("standin", "tiny-gpt2")]
    notes = model.instances[("keras", "base")].versions[-1].notes
    assert "Parity verified against transformers.GPT2LMHeadModel" in notes and "worst max abs error" in notes
    assert "every weight element equals the converted upstream value" in notes


def test_unverified_and_tampered_presets_are_refused_before_any_upload(standin_hub, verified, tmp_path):
    unverified = tmp_path / "unverified"
    convert(make_gpt2(tmp_path / "hf"), unverified)
    with pytest.raises(publish.PublishError, match="has no parity report"):
        publish.publish(unverified, [HF_TARGET, KAGGLE_TARGET])

    backbone = Backbone.from_preset(verified)
    backbone.weights[3].assign(np.asarray(backbone.weights[3].numpy()) * 1.5)
    backbone.save_to_preset(verified)  # a valid manifest, but other weights than those checked
    with pytest.raises(publish.PublishError, match="made for other files"):
        publish.publish(verified, [HF_TARGET, KAGGLE_TARGET])

    (verified / "model.weights.h5").write_bytes(b"not weights")
    with pytest.raises(publish.PublishError, match="'model.weights.h5'"):
        publish.publish(verified, [HF_TARGET])
    assert standin_hub.log == []


@pytest.mark.parametrize(
    "bad_target, problem",
    [
        ("kaggle://standin/tiny-gpt2/keras/..", "the variation '..' contains '..'"),
        ("kaggle://standin/tiny-gpt2/kerass/base", "unknown Kaggle framework 'kerass'"),
        ("hf://standin/tiny-gpt2@main", "a target names a repo, not a revision"),
        ("file://elsewhere/registry", "names the host 'elsewhere'"),
    ],
)
def test_every_target_is_validated_before_any_upload(standin_hub, verified, bad_target, problem):
    before = files_of(verified)
    with pytest.raises(PresetforgeError, match=re.escape(problem)):
        publish.publish(verified, [HF_TARGET, KAGGLE_TARGET, bad_target])
    assert standin_hub.log == []
    assert files_of(verified) == before


def test_missing_credentials_fail_before_any_work(standin_hub, verified, monkeypatch):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    before = _snapshot(verified)
    with pytest.raises(UnauthorizedError, match="no Kaggle credentials"):
        publish.publish(verified, [HF_TARGET, KAGGLE_TARGET])
    assert _snapshot(verified) == before
    assert standin_hub.log == []


def test_local_registry_is_laid_out_like_the_hubs(verified, tmp_path):
    (o,) = publish.publish(verified, [str(tmp_path / "registry")], name="tiny")
    assert o.status == "published" and o.handle.endswith("registry/local/tiny/tiny/1")
    assert publish.publish(verified, [str(tmp_path / "registry")], name="tiny")[0].status == "up to date"
    _same_outputs(verified, tmp_path / "registry/local/tiny/tiny/1")


def test_dropped_blob_upload_is_a_clear_failure(standin_hub, verified, monkeypatch):
    import kagglehub.gcs_upload

    monkeypatch.setattr(kagglehub.gcs_upload.time, "sleep", lambda s: None)
    monkeypatch.setattr(transfers, "RETRY_BACKOFF_S", 0.0)
    standin_hub.faults.drop("kaggle.blob_upload", times=100, after_bytes=10)
    (outcome,) = publish.publish(verified, [KAGGLE_TARGET])
    assert outcome.status == "failed" and outcome.handle is None
    assert standin_hub.kaggle.versions("standin", "tiny-gpt2", "keras", "base") == []


def test_cli_publish_dry_run_changes_nothing_anywhere(standin_hub, verified, tmp_path):
    before = _snapshot(verified)
    registry = tmp_path / "registry"
    targets = [HF_TARGET, KAGGLE_TARGET, str(registry)]
    result = CliRunner().invoke(main, ["publish", str(verified), *(a for t in targets for a in ("--to", t)), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would publish hf://standin/tiny-gpt2" in result.output and result.output.count("would publish") == 3
    assert standin_hub.requests_to("commit", "POST") == []
    assert standin_hub.kaggle.versions("standin", "tiny-gpt2", "keras", "base") == []
    assert _snapshot(verified) == before and not registry.exists()
