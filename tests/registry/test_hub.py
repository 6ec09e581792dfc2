"""The hub layer against the loopback stand-in, through the real huggingface_hub and kagglehub.

Round trips, "already published" detection, every error class, and the faults publishing must
survive or report clearly: a 500 on commit, a connection cut during an upload, a rejected token.
"""

import json
import os
import random
import types

import pytest

from presetforge import preset as preset_lib
from presetforge.errors import (
    GatedError,
    HandleError,
    HubError,
    NotFoundError,
    OfflineError,
    UnauthorizedError,
)
from presetforge.registry import hf, hub, kaggle, transfers

OWNER, MODEL, FRAMEWORK, VARIATION = "standin", "tiny-gpt2", "keras", "tiny_en"
KAGGLE = (OWNER, MODEL, FRAMEWORK, VARIATION)


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch):
    """Retries without pauses: ours, and kagglehub's blob-upload backoff (1+2+4+8+16 s)."""
    import kagglehub.gcs_upload

    monkeypatch.setattr(transfers, "RETRY_BACKOFF_S", 0)
    monkeypatch.setattr(kagglehub.gcs_upload, "time", types.SimpleNamespace(sleep=lambda s: None))


def make_preset(root, seed=0):
    """A preset-shaped folder: JSON, a subdirectory, a >1 MB binary, and its manifest."""
    rng = random.Random(seed)
    (root / "assets" / "tokenizer").mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"class_name": "TinyBackbone", "seed": seed}))
    (root / "assets" / "tokenizer" / "vocab.txt").write_text("hello\nworld\n")
    (root / "model.weights.h5").write_bytes(rng.randbytes(1_200_000))
    preset_lib.write_json(root / preset_lib.MANIFEST_FILE, preset_lib.build_manifest(root))
    return root


def files_of(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def manifest_sha(root):
    return preset_lib.sha256_file(root / preset_lib.MANIFEST_FILE)


@pytest.fixture
def preset_dir(tmp_path):
    return make_preset(tmp_path / "preset")


# --- round trips and re-publishing ------------------------------------------------------------


def test_hf_round_trip(standin_hub, preset_dir):
    sha = hf.upload(preset_dir, "org/tiny", "Publish tiny")
    assert sha == standin_hub.hf.head("org/tiny") == hf.head("org/tiny")
    assert hf.manifest_sha("org/tiny") == manifest_sha(preset_dir)
    local = hf.download("org/tiny")
    assert files_of(local) == files_of(preset_dir)  # the Hub's .gitattributes stays out
    assert preset_lib.verify(local) == manifest_sha(preset_dir)
    assert hf.download("org/tiny", revision=sha) == local


def test_hf_identical_second_upload_commits_nothing(standin_hub, preset_dir):
    first = hf.upload(preset_dir, "org/tiny", "Publish tiny")
    commits = standin_hub.hf.commits("org/tiny")
    assert hf.upload(preset_dir, "org/tiny", "Publish tiny again") == first
    assert standin_hub.hf.commits("org/tiny") == commits


def test_hf_changed_upload_replaces_the_whole_preset(standin_hub, tmp_path, preset_dir):
    hf.upload(preset_dir, "org/tiny", "v1")
    new = tmp_path / "new"
    make_preset(new, seed=1)
    (new / "assets" / "tokenizer" / "vocab.txt").unlink()
    preset_lib.write_json(new / preset_lib.MANIFEST_FILE, preset_lib.build_manifest(new))
    sha = hf.upload(new, "org/tiny", "v2")
    remote = standin_hub.hf.files("org/tiny", sha)
    assert set(remote) == {".gitattributes", *files_of(new)}  # stale file deleted in the same commit
    assert len(standin_hub.requests_to("/commit/", "POST")) == 2
    assert hf.manifest_sha("org/tiny") == manifest_sha(new)


def test_hf_manifest_sha_is_none_when_nothing_is_published(standin_hub):
    assert hf.manifest_sha("org/absent") is None
    standin_hub.hf.create_repo("org/empty")
    assert hf.manifest_sha("org/empty") is None
    assert hf.manifest_sha("org/empty", revision="no-such-branch") is None


def test_kaggle_round_trip(standin_hub, preset_dir):
    assert kaggle.manifest_sha(*KAGGLE) is None
    assert kaggle.upload(preset_dir, *KAGGLE, license="Apache 2.0", version_notes="first") == 1
    assert standin_hub.kaggle.files(*KAGGLE, 1) == files_of(preset_dir)
    assert kaggle.manifest_sha(*KAGGLE) == manifest_sha(preset_dir)
    local = kaggle.download(*KAGGLE)
    assert files_of(local) == files_of(preset_dir)
    assert preset_lib.verify(local) == manifest_sha(preset_dir)


def test_kaggle_second_upload_is_a_new_version_so_check_the_manifest_first(standin_hub, tmp_path, preset_dir):
    kaggle.upload(preset_dir, *KAGGLE, license="Apache 2.0")
    # Kaggle numbers every upload, identical or not: publishing asks for the manifest first.
    assert kaggle.manifest_sha(*KAGGLE) == manifest_sha(preset_dir)
    new = make_preset(tmp_path / "new", seed=2)
    assert kaggle.upload(new, *KAGGLE, version_notes="second") == 2
    assert standin_hub.kaggle.versions(*KAGGLE) == [1, 2]
    assert kaggle.manifest_sha(*KAGGLE) == manifest_sha(new)
    assert kaggle.manifest_sha(*KAGGLE, version=1) == manifest_sha(preset_dir)
    assert files_of(kaggle.download(*KAGGLE, version=1)) == files_of(preset_dir)


# --- errors -----------------------------------------------------------------------------------


def test_malformed_kaggle_framework_is_a_handle_error(standin_hub, preset_dir):
    with pytest.raises(HandleError, match="unknown Kaggle framework 'kerass'"):
        kaggle.download(OWNER, MODEL, "kerass", VARIATION)
    assert standin_hub.log == []


def test_not_found(standin_hub, preset_dir):
    with pytest.raises(NotFoundError, match="hf://org/absent not found"):
        hf.download("org/absent")
    hf.upload(preset_dir, "org/tiny", "Publish tiny")
    with pytest.raises(NotFoundError, match="hf://org/tiny@v9: no such revision"):
        hf.download("org/tiny", revision="v9")
    with pytest.raises(NotFoundError, match=f"kaggle://{OWNER}/{MODEL}/keras/{VARIATION} not found"):
        kaggle.download(*KAGGLE)
    kaggle.upload(preset_dir, *KAGGLE)
    with pytest.raises(NotFoundError, match=f"{VARIATION}/7 not found"):
        kaggle.download(*KAGGLE, version=7)


def test_rejected_credentials_are_unauthorized(standin_hub, preset_dir):
    hf.upload(preset_dir, "org/tiny", "Publish tiny")
    standin_hub.reject_auth = True
    with pytest.raises(UnauthorizedError, match="rejected the token .*HTTP 401"):
        hf.download("org/tiny")
    with pytest.raises(UnauthorizedError, match="HTTP 401"):
        hf.upload(preset_dir, "org/tiny", "again")
    with pytest.raises(UnauthorizedError, match="rejected the credentials .*HTTP 401"):
        kaggle.upload(preset_dir, *KAGGLE)
    assert standin_hub.requests_to("StartBlobUpload") == []  # refused before any bytes moved
    with pytest.raises(UnauthorizedError, match="KAGGLE_API_TOKEN or KAGGLE_USERNAME/KAGGLE_KEY"):
        kaggle.download(*KAGGLE)


def test_missing_credentials_stop_an_upload_before_any_request(standin_hub, monkeypatch, preset_dir):
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.delenv("KAGGLE_KEY")
    assert hub.credentials_problem("hf://org/tiny") == "no Hugging Face token: set HF_TOKEN (or run `hf auth login`)"
    assert "KAGGLE_USERNAME and KAGGLE_KEY" in hub.credentials_problem("kaggle")
    with pytest.raises(UnauthorizedError, match="no Hugging Face token"):
        hf.upload(preset_dir, "org/tiny", "Publish tiny")
    with pytest.raises(UnauthorizedError, match="no Kaggle credentials"):
        kaggle.upload(preset_dir, *KAGGLE)
    assert standin_hub.log == []


def test_kaggle_api_token_is_used_when_set(standin_hub, monkeypatch, preset_dir):
    from tests.standin_hub import KAGGLE_API_TOKEN

    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    monkeypatch.setenv("KAGGLE_API_TOKEN", KAGGLE_API_TOKEN)
    assert hub.credentials_problem("kaggle") is None
    assert kaggle.upload(preset_dir, *KAGGLE) == 1


def test_gated(standin_hub, preset_dir):
    hf.upload(preset_dir, "org/tiny", "Publish tiny")
    standin_hub.hf.gate("org/tiny")
    with pytest.raises(GatedError, match="hf://org/tiny is gated"):
        hf.download("org/tiny")
    with pytest.raises(GatedError):
        hf.manifest_sha("org/tiny")
    kaggle.upload(preset_dir, *KAGGLE)
    standin_hub.kaggle.gate(OWNER, MODEL)
    with pytest.raises(GatedError, match="accept its terms"):
        kaggle.download(*KAGGLE)


def test_offline_uses_the_cache_or_says_nothing_is_cached(standin_hub, preset_dir, monkeypatch):
    hf.upload(preset_dir, "org/tiny", "Publish tiny")
    kaggle.upload(preset_dir, *KAGGLE)
    cached_hf = hf.download("org/tiny")
    cached_kaggle = kaggle.download(*KAGGLE)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="HF_HUB_OFFLINE is set and hf://org/other"):
        hf.download("org/other")
    assert hf.download("org/tiny") == cached_hf
    monkeypatch.delenv("HF_HUB_OFFLINE")
    standin_hub.stop()
    assert hf.download("org/tiny") == cached_hf
    assert kaggle.download(*KAGGLE) == cached_kaggle
    assert kaggle.download(*KAGGLE, version=1) == cached_kaggle
    with pytest.raises(OfflineError, match="cannot reach the Hugging Face hub .* not in the local cache"):
        hf.download("org/other")
    with pytest.raises(OfflineError, match="cannot reach Kaggle .* not in the local cache"):
        kaggle.download(OWNER, "other", FRAMEWORK, VARIATION)
    with pytest.raises(OfflineError):
        hf.manifest_sha("org/tiny")  # "already published?" is never answered from the cache
    with pytest.raises(OfflineError):
        kaggle.manifest_sha(*KAGGLE)


# --- fault injection --------------------------------------------------------------------------


def test_hf_commit_500_is_retried(standin_hub, preset_dir):
    standin_hub.faults.fail("hf.commit", times=1, status=500)
    sha = hf.upload(preset_dir, "org/tiny", "Publish tiny")
    assert standin_hub.hf.files("org/tiny", sha).keys() >= files_of(preset_dir).keys()
    assert [r[2] for r in standin_hub.requests_to("/commit/")] == [500, 200]


def test_hf_commit_500_every_time_is_a_clear_error_and_changes_nothing(standin_hub, preset_dir):
    standin_hub.hf.create_repo("org/tiny")
    head = standin_hub.hf.head("org/tiny")
    standin_hub.faults.fail("hf.commit", times=10, status=500)
    with pytest.raises(HubError, match=r"answered HTTP 500 for hf://org/tiny: .*gave up after 3 tries"):
        hf.upload(preset_dir, "org/tiny", "Publish tiny")
    assert standin_hub.hf.head("org/tiny") == head
    assert hf.manifest_sha("org/tiny") is None


def test_hf_connection_cut_during_commit(standin_hub, preset_dir):
    standin_hub.faults.drop("hf.commit", times=1)
    hf.upload(preset_dir, "org/tiny", "Publish tiny")
    assert hf.manifest_sha("org/tiny") == manifest_sha(preset_dir)
    standin_hub.faults.drop("hf.commit", times=10)
    with pytest.raises(HubError, match="connection to the Hugging Face hub .* broke off"):
        hf.upload(make_preset(preset_dir.parent / "v2", seed=3), "org/tiny", "v2")
    assert hf.manifest_sha("org/tiny") == manifest_sha(preset_dir)


def test_kaggle_connection_cut_during_blob_upload_resumes(standin_hub, preset_dir):
    standin_hub.faults.drop("kaggle.blob_upload", times=1)
    assert kaggle.upload(preset_dir, *KAGGLE) == 1
    assert standin_hub.kaggle.files(*KAGGLE, 1) == files_of(preset_dir)
    assert ("PUT", "dropped") in {(r[0], r[2]) for r in standin_hub.requests_to("/_standin/kaggle/upload/")}


def test_kaggle_connection_cut_every_time_is_a_clear_error_and_publishes_nothing(standin_hub, preset_dir):
    standin_hub.faults.drop("kaggle.blob_upload", times=1000)
    with pytest.raises(HubError, match=r"Kaggle \(http://localhost\) refused kaggle://.*incomplete"):
        kaggle.upload(preset_dir, *KAGGLE)
    assert standin_hub.kaggle.versions(*KAGGLE) == []
    assert kaggle.manifest_sha(*KAGGLE) is None


def test_kaggle_500_on_create_is_retried_without_duplicates(standin_hub, preset_dir):
    standin_hub.faults.fail("kaggle.CreateModelInstance", times=1, status=500)
    assert kaggle.upload(preset_dir, *KAGGLE) == 1
    assert standin_hub.kaggle.versions(*KAGGLE) == [1]
    standin_hub.faults.fail("kaggle.CreateModelInstanceVersion", times=10, status=503)
    with pytest.raises(HubError, match=r"HTTP 503 .*gave up after 3 tries"):
        kaggle.upload(preset_dir, *KAGGLE)
    assert standin_hub.kaggle.versions(*KAGGLE) == [1]


# --- the real hubs ----------------------------------------------------------------------------


@pytest.mark.live
@pytest.mark.skipif(
    not (os.environ.get("PRESETFORGE_LIVE_HF_REPO") and os.environ.get("HF_TOKEN")),
    reason="set PRESETFORGE_LIVE_HF_REPO (a scratch repo you own) and HF_TOKEN to run against huggingface.co",
)
def test_live_hf_round_trip(tmp_path):
    repo_id = os.environ["PRESETFORGE_LIVE_HF_REPO"]
    folder = make_preset(tmp_path / "preset", seed=random.randrange(1 << 30))
    hf.upload(folder, repo_id, "presetforge live test", private=True)
    assert hf.manifest_sha(repo_id) == manifest_sha(folder)
    assert files_of(hf.download(repo_id)) == files_of(folder)


@pytest.mark.live
@pytest.mark.skipif(
    not (os.environ.get("PRESETFORGE_LIVE_KAGGLE_HANDLE") and hub.credentials_problem("kaggle") is None),
    reason="set PRESETFORGE_LIVE_KAGGLE_HANDLE (owner/model/framework/variation you own) and Kaggle credentials",
)
def test_live_kaggle_round_trip(tmp_path):
    parts = os.environ["PRESETFORGE_LIVE_KAGGLE_HANDLE"].split("/")
    folder = make_preset(tmp_path / "preset", seed=random.randrange(1 << 30))
    version = kaggle.upload(folder, *parts, license="Apache 2.0", version_notes="presetforge live test")
    assert files_of(kaggle.download(*parts, version=version)) == files_of(folder)
