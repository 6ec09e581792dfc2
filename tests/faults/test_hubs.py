"""Hubs misbehaving (the stand-in injecting faults): retried where safe, then one clear line;
nothing damaged is kept as complete or loaded; nothing is written outside a download's target."""

import os
import re
import time
import types
from pathlib import Path

import pytest

from presetforge import Backbone, HubError, UnauthorizedError
from presetforge.errors import GatedError, OfflineError
from presetforge.preset import MANIFEST_FILE, sha256_file
from presetforge.pipeline import publish
from presetforge.registry import catalog, hf, kaggle, transfers
from tests.faults.conftest import assert_one_clear_line, cli
from tests.faults.table import Fault
from tests.verified import verified_preset

AREA = "hubs"
HF_REPO, CHECKPOINT_REPO, OTHER_REPO = "standin/tiny-gpt2", "standin/tiny-gpt2-upstream", "standin/other"
KAGGLE = ("standin", "tiny-gpt2", "keras", "base")
OTHER_KAGGLE = "kaggle://standin/other/keras/base"
WEIGHTS = "/model.weights.h5"
GAVE_UP = r".* \(gave up after 3 tries\)"
RETRY = "; publishing again retries it$"  # what publish adds to a failed target's line

FAULTS = (
    Fault("hf-5xx", AREA, "the Hugging Face hub answers HTTP 500 to every repo-info request (a download, "
          "publish's \"already published?\" lookup)", "retried 3 times, pausing 1 s then 2 s, then one line naming "
          "the hub and the status; nothing cached, nothing uploaded",
          r"the Hugging Face hub at http://127\.0\.0\.1:\d+ answered HTTP 500 for hf://\S+: injected failure"),
    Fault("kaggle-5xx", AREA, "Kaggle answers HTTP 500 to every version look-up (a download, publish's lookup)",
          "retried 3 times with backoff, then one line naming Kaggle and the status; nothing uploaded",
          r"Kaggle \(http://localhost\) answered HTTP 500 for kaggle://\S+: injected failure"),
    Fault("hf-5xx-clears", AREA, "the Hugging Face hub answers HTTP 503 once to the repo info and once to a "
          "file's bytes, then recovers", "retried; the preset loads, byte for byte what was published"),
    Fault("kaggle-5xx-clears", AREA, "Kaggle answers HTTP 503 once to the version look-up and once to a file's "
          "bytes, then recovers", "retried; the preset loads, byte for byte what was published"),
    Fault("hf-timeout", AREA, "the Hugging Face hub holds its repo-info answer past `HF_HUB_DOWNLOAD_TIMEOUT` "
          "(huggingface_hub itself sends that request with no timeout)", "given up after the timeout and retried "
          "3 times, then one line; an answer that comes in time on the second try loads",
          r"the Hugging Face hub at http://127\.0\.0\.1:\d+ did not answer in time for hf://\S+: timed out"),
    Fault("hf-401", AREA, "the Hugging Face hub rejects the token (HTTP 401)",
          "one line saying to check `HF_TOKEN`, never retried; publish reports the target failed",
          r"rejected the token for hf://\S+ \(HTTP 401\): check HF_TOKEN"),
    Fault("hf-403", AREA, "the Hugging Face hub refuses the token to read the repo, or to create one (HTTP 403)",
          "one line about that token's access (to read) or its write permission (to publish), never retried",
          r"the token in HF_TOKEN may not (read|do this to) hf://\S+ \(HTTP 403\)"),
    Fault("kaggle-401", AREA, "Kaggle rejects the credentials (HTTP 401)",
          "one line naming the variables to check, never retried; publish reports the target failed",
          r"rejected the credentials for kaggle://\S+ \(HTTP 401\): check KAGGLE_API_TOKEN or "
          "KAGGLE_USERNAME/KAGGLE_KEY"),
    Fault("kaggle-403", AREA, "Kaggle refuses the download (HTTP 403: gated or private), or refuses the upload",
          "one line: accept the terms with this account (download), or these credentials may not publish it",
          r"(is gated or private \(HTTP 403\): accept its terms|these Kaggle credentials may not publish) "),
    Fault("hf-download-cut", AREA, "a Hugging Face download cut off after the first 1000 bytes of the weights "
          "(once), then every file cut before its first byte on every try", "the client sees the bytes missing and "
          "resumes, so the preset loads byte for byte; cut every time: one line after 3 tries, nothing kept as "
          "complete, and the next download once the hub recovers is whole",
          r"the connection to the Hugging Face hub at \S+ broke off for hf://\S+: peer closed connection"),
    Fault("hf-download-short", AREA, "a Hugging Face download of the weights answered with only their first "
          "1000 bytes, announced as the whole file (once, then on every try)", "caught against the size the hub "
          "lists, kept aside as incomplete and retried, so the preset loads byte for byte; every time: one line, "
          "nothing loaded, and the next download once the hub recovers is whole",
          r"the download of hf://\S+ from the Hugging Face hub at \S+ arrived damaged: Consistency check failed: "
          r"file should be of size \d+ but has size \d+"),
    Fault("kaggle-download-cut", AREA, "a Kaggle download cut off after the first 1000 bytes of the weights (once, "
          "then of every file on every try)", "retried, so the preset loads byte for byte; every time: one line, "
          "the version never marked complete in kagglehub's cache, and the next download is whole",
          r"the connection to Kaggle \(http://localhost\) broke off for kaggle://\S+: IncompleteRead"),
    Fault("kaggle-download-short", AREA, "a Kaggle download of the weights answered with only their first 1000 "
          "bytes, announced as the whole file (once, then on every try)", "caught by the md5 Kaggle sends, the "
          "damaged file deleted and fetched again; every time: one line, nothing loaded, the version never marked "
          "complete",
          r"the download of kaggle://\S+ from Kaggle \(http://localhost\) arrived damaged: its md5 does not match"),
    Fault("publish-second-target-fails", AREA, "`publish --to kaggle://… --to hf://… --record`: the Hugging Face "
          "commit fails on every try (HTTP 500)", "exit 1: Kaggle's version published and recorded in the catalog, "
          "a line naming the Hugging Face target to retry; publishing again uploads to it alone",
          r"^failed hf://standin/tiny-gpt2: the Hugging Face hub at \S+ answered HTTP 500 .* \(gave up after 3 "
          r"tries\); publishing again retries it$"),
    Fault("kaggle-hostile-file-name", AREA, "a Kaggle version lists a file named `../x` or an absolute path "
          "(kagglehub writes each file of a small version to `target/name`; a larger one comes as an archive)",
          "refused before kagglehub downloads anything, in one line; nothing written outside the cache target",
          r"kaggle://standin/tiny-gpt2/keras/\w+/1 lists a file named '[^']*x', which would be written outside its "
          "download directory; refusing to download it"),
    Fault("hf-hostile-file-name", AREA, "a Hugging Face repo holds a file named `../x`",
          "huggingface_hub refuses to write it; one line; nothing written outside the cache",
          r"hf://\S+ holds a file the client refuses to write: Invalid filename '\.\./x'"),
)
CASE = {f.id: f for f in FAULTS}


# --- the stand-in serving a verified preset, and what to look at ------------------------------


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def verified(tmp_path_factory):
    """A verified tiny GPT-2 preset and the upstream checkpoint it was made from."""
    return verified_preset(tmp_path_factory.mktemp("verified"))


@pytest.fixture
def sleeps(monkeypatch):
    """Our backoff pauses, recorded rather than slept; the clients' own pauses skipped; the clients'
    progress bars (not messages) off, so stderr holds only what presetforge says."""
    import huggingface_hub.file_download
    import huggingface_hub.utils._http
    import kagglehub.gcs_upload
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    recorded = []
    monkeypatch.setattr(transfers, "time", types.SimpleNamespace(sleep=recorded.append))
    skip = types.SimpleNamespace(sleep=lambda seconds: None)
    for module in (huggingface_hub.utils._http, huggingface_hub.file_download, kagglehub.gcs_upload):
        monkeypatch.setattr(module, "time", skip)
    were_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    yield recorded
    if not were_disabled:
        enable_progress_bars()


@pytest.fixture
def served(standin_hub, verified, sleeps):
    """The stand-in holding the preset on both hubs (twice: a second copy for a fresh download) and
    its upstream checkpoint on Hugging Face."""
    source, preset = verified
    for repo in (HF_REPO, HF_REPO + "-2"):
        standin_hub.hf.put_files(repo, _files(preset))
    standin_hub.hf.put_files(CHECKPOINT_REPO, _files(source))
    for variation in ("base", "base-2"):
        standin_hub.kaggle.put_version(*KAGGLE[:3], variation, _files(preset))
    return standin_hub


def _hf(repo=HF_REPO):
    return f"hf://{repo}"


def _kaggle(variation="base"):
    return "kaggle://" + "/".join((*KAGGLE[:3], variation))


def _requests(standin_hub, fragment, count, within=5.0):
    """The requests to ``fragment`` once ``count`` of them are logged (a held request is logged
    when the stand-in lets it go)."""
    deadline = time.monotonic() + within
    while len(standin_hub.requests_to(fragment)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return standin_hub.requests_to(fragment)


def _raises(error_type, fault, load):
    """``load()`` fails with exactly ``error_type`` and the row's message, in one line."""
    with pytest.raises(error_type, match=fault.message) as raised:
        load()
    assert raised.type is error_type and "\n" not in str(raised.value)
    return str(raised.value)


def _target_line(result, target, pattern, exit_code=1):
    """``publish`` exits ``exit_code`` and reports ``target`` in one line matching ``pattern``, no traceback."""
    assert result.exit_code == exit_code, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    status = r"^(published|up to date|would publish|failed) "
    lines = [line for line in result.stdout.splitlines() if re.match(rf"{status}{re.escape(target)}(:| |$)", line)]
    assert len(lines) == 1, result.stdout
    assert re.search(pattern, lines[0]), (pattern, lines[0])
    return lines[0]


def _publish_fails(preset, target, pattern):
    """``presetforge publish PRESET --to TARGET`` exits 1 with one line for it matching ``pattern``."""
    return _target_line(cli("publish", preset, "--to", target), target, pattern)


def _loads_as_published(handle, preset):
    """``handle`` loads, and what was downloaded is byte for byte the published preset."""
    Backbone.from_preset(handle)
    parsed = handle.split("://", 1)[1]
    path = hf.download(parsed) if handle.startswith("hf://") else kaggle.download(*parsed.split("/"))
    assert _files(path) == _files(preset)


def _nothing_complete_in_hf_cache(monkeypatch, repo):
    """The client's cache answers nothing for ``repo`` as complete, and we made no regular-file copy of it."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match=r"is (only partly in|not in) the local cache"):
        hf.download(repo)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    ours = Path(os.environ["HF_HUB_CACHE"] + "-presetforge") / f"models--{repo.replace('/', '--')}"
    assert not ours.exists() or not any(ours.iterdir())


def _kaggle_version_complete(variation):
    from kagglehub.cache import Cache
    from kagglehub.handle import ModelHandle

    handle = ModelHandle(*KAGGLE[:3], variation, version=1)
    return Cache().load_from_cache(handle) is not None


# --- 5xx and timeouts -------------------------------------------------------------------------


def test_hf_5xx(served, sleeps, verified, tmp_path, monkeypatch):
    fault = CASE["hf-5xx"]
    served.faults.fail("hf.info", times=3, status=500)
    _raises(HubError, fault, lambda: Backbone.from_preset(_hf()))
    assert [r[2] for r in served.requests_to(f"/api/models/{HF_REPO}/revision/main")] == [500, 500, 500]
    assert sleeps == [transfers.RETRY_BACKOFF_S, 2 * transfers.RETRY_BACKOFF_S]
    _nothing_complete_in_hf_cache(monkeypatch, HF_REPO)

    served.faults.fail("hf.info", times=3, status=500)
    line = assert_one_clear_line(cli("convert", _hf(CHECKPOINT_REPO), "-o", tmp_path / "out"), fault.message)
    assert line.endswith("(gave up after 3 tries)") and not (tmp_path / "out").exists()

    served.faults.fail("hf.info", times=3, status=500)
    _publish_fails(verified[1], _hf(OTHER_REPO), fault.message + GAVE_UP + RETRY)
    assert served.requests_to("/api/repos/create") == [] and served.requests_to("/commit/") == []


def test_kaggle_5xx(served, sleeps, verified):
    fault = CASE["kaggle-5xx"]
    served.faults.fail("kaggle.GetModelInstance", times=3, status=500)
    message = _raises(HubError, fault, lambda: Backbone.from_preset(_kaggle()))
    assert message.endswith("(gave up after 3 tries)")
    assert [r[2] for r in served.requests_to("/GetModelInstance")] == [500, 500, 500]
    assert sleeps == [transfers.RETRY_BACKOFF_S, 2 * transfers.RETRY_BACKOFF_S]
    assert not _kaggle_version_complete("base")

    served.faults.fail("kaggle.GetModelInstance", times=3, status=500)
    _publish_fails(verified[1], OTHER_KAGGLE, fault.message + GAVE_UP + RETRY)
    assert served.requests_to("StartBlobUpload") == []


def test_hf_5xx_clears(served, sleeps, verified):
    served.faults.fail("hf.info", times=1, status=503)
    served.faults.fail("hf.file", times=1, status=503)
    _loads_as_published(_hf(), verified[1])
    assert [r[2] for r in served.requests_to(f"/api/models/{HF_REPO}/revision/main")][:2] == [503, 200]
    assert 503 in [r[2] for r in served.requests_to(f"/{HF_REPO}/resolve/", "GET")]
    assert sleeps == [transfers.RETRY_BACKOFF_S, 2 * transfers.RETRY_BACKOFF_S]  # one download: two failures, two retries


def test_kaggle_5xx_clears(served, sleeps, verified):
    served.faults.fail("kaggle.GetModelInstance", times=1, status=503)
    served.faults.fail("kaggle.file", times=1, status=503)
    _loads_as_published(_kaggle(), verified[1])
    assert [r[2] for r in served.requests_to("/GetModelInstance")][:2] == [503, 200]
    assert 503 in [r[2] for r in served.requests_to("/_standin/kaggle/files/")]
    assert sleeps == [transfers.RETRY_BACKOFF_S, 2 * transfers.RETRY_BACKOFF_S]


def test_hf_timeout(served, sleeps, verified, monkeypatch):
    fault = CASE["hf-timeout"]
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "1")
    info = f"/api/models/{HF_REPO}/revision/main"
    served.faults.delay("hf.info", times=3, seconds=1.5)  # answered after 1.5 s, had the client waited
    message = _raises(HubError, fault, lambda: Backbone.from_preset(_hf()))
    assert message.endswith("(gave up after 3 tries)")
    assert len(_requests(served, info, 3)) == 3 and sleeps == [transfers.RETRY_BACKOFF_S, 2 * transfers.RETRY_BACKOFF_S]

    served.faults.delay("hf.info", times=1, seconds=1.5)
    _loads_as_published(_hf(), verified[1])

    served.faults.delay("hf.info", times=3, seconds=1.5)
    _publish_fails(verified[1], _hf(OTHER_REPO), fault.message + GAVE_UP + RETRY)
    assert served.requests_to("/commit/") == []


# --- credentials ------------------------------------------------------------------------------


def test_hf_401(served, sleeps, verified):
    fault = CASE["hf-401"]
    served.reject_auth = True
    _raises(UnauthorizedError, fault, lambda: Backbone.from_preset(_hf()))
    assert len(served.requests_to(f"/api/models/{HF_REPO}")) == 1 and sleeps == []
    _publish_fails(verified[1], _hf(OTHER_REPO), fault.message + RETRY)
    assert served.requests_to("/commit/") == [] and sleeps == []


def test_hf_403(served, sleeps, verified):
    fault = CASE["hf-403"]
    served.faults.fail("hf.info", times=1, status=403)
    message = _raises(UnauthorizedError, fault, lambda: Backbone.from_preset(_hf()))
    assert "may not read" in message and "check that its account has access" in message
    served.faults.fail("hf.create_repo", times=1, status=403)
    line = _publish_fails(verified[1], _hf(OTHER_REPO), fault.message)
    assert line.endswith("publishing needs a write token; publishing again retries it")
    assert len(served.requests_to("/api/repos/create")) == 1 and served.requests_to("/commit/") == []
    assert sleeps == []


def test_kaggle_401(served, sleeps, verified):
    fault = CASE["kaggle-401"]
    served.reject_auth = True
    _raises(UnauthorizedError, fault, lambda: Backbone.from_preset(_kaggle()))
    assert len(served.requests_to("/GetModelInstance")) == 1 and sleeps == []
    _publish_fails(verified[1], OTHER_KAGGLE, fault.message + RETRY)
    assert served.requests_to("StartBlobUpload") == [] and sleeps == []


def test_kaggle_403(served, sleeps, verified):
    fault = CASE["kaggle-403"]
    served.kaggle.gate(*KAGGLE[:2])
    _raises(GatedError, fault, lambda: Backbone.from_preset(_kaggle()))
    served.faults.fail("kaggle.StartBlobUpload", times=1, status=403)
    _publish_fails(verified[1], OTHER_KAGGLE, fault.message)
    assert 403 in [r[2] for r in served.requests_to("StartBlobUpload")] and sleeps == []  # refused, not retried
    assert served.requests_to("CreateModelInstance") == []
    assert served.kaggle.versions("standin", "other", "keras", "base") == []


# --- downloads cut short ----------------------------------------------------------------------


def test_hf_download_cut(served, sleeps, verified, tmp_path, monkeypatch):
    fault, preset = CASE["hf-download-cut"], verified[1]
    served.faults.cut("hf.file", after_bytes=1000, path=WEIGHTS)
    _loads_as_published(_hf(), preset)
    assert "dropped" in [r[2] for r in served.requests_to(f"/{HF_REPO}/resolve/", "GET")]

    served.faults.cut("hf.file", times=1000, after_bytes=0)
    message = _raises(HubError, fault, lambda: Backbone.from_preset(_hf(HF_REPO + "-2")))
    assert message.endswith("(gave up after 3 tries)")
    _nothing_complete_in_hf_cache(monkeypatch, HF_REPO + "-2")
    assert_one_clear_line(cli("convert", _hf(CHECKPOINT_REPO), "-o", tmp_path / "out"), fault.message)
    assert not (tmp_path / "out").exists()
    served.faults.clear()
    _loads_as_published(_hf(HF_REPO + "-2"), preset)


def test_hf_download_short(served, sleeps, verified, monkeypatch):
    fault, preset = CASE["hf-download-short"], verified[1]
    served.faults.short("hf.file", after_bytes=1000, path=WEIGHTS)
    _loads_as_published(_hf(), preset)
    assert sleeps == [transfers.RETRY_BACKOFF_S]  # the short weights were caught and fetched again

    served.faults.short("hf.file", times=1000, after_bytes=1000)
    message = _raises(HubError, fault, lambda: Backbone.from_preset(_hf(HF_REPO + "-2")))
    assert message.endswith("(gave up after 3 tries)")
    _nothing_complete_in_hf_cache(monkeypatch, HF_REPO + "-2")
    served.faults.clear()
    _loads_as_published(_hf(HF_REPO + "-2"), preset)


def test_kaggle_download_cut(served, sleeps, verified):
    fault, preset = CASE["kaggle-download-cut"], verified[1]
    served.faults.cut("kaggle.file", after_bytes=1000, path=WEIGHTS)
    _loads_as_published(_kaggle(), preset)
    assert "dropped" in [r[2] for r in served.requests_to("/_standin/kaggle/files/")]

    served.faults.cut("kaggle.file", times=1000, after_bytes=1000)
    message = _raises(HubError, fault, lambda: Backbone.from_preset(_kaggle("base-2")))
    assert message.endswith("(gave up after 3 tries)") and not _kaggle_version_complete("base-2")
    served.faults.clear()
    _loads_as_published(_kaggle("base-2"), preset)


def test_kaggle_download_short(served, sleeps, verified):
    fault, preset = CASE["kaggle-download-short"], verified[1]
    served.faults.short("kaggle.file", after_bytes=1000, path=WEIGHTS)
    _loads_as_published(_kaggle(), preset)
    assert sleeps == [transfers.RETRY_BACKOFF_S]

    served.faults.short("kaggle.file", times=1000, after_bytes=1000)
    message = _raises(HubError, fault, lambda: Backbone.from_preset(_kaggle("base-2")))
    assert message.endswith("(gave up after 3 tries)") and not _kaggle_version_complete("base-2")
    served.faults.clear()
    _loads_as_published(_kaggle("base-2"), preset)


# --- two targets, the second failing ----------------------------------------------------------


def test_publish_second_target_fails(standin_hub, sleeps, verified, tmp_path, monkeypatch):
    fault, preset = CASE["publish-second-target-fails"], verified[1]
    catalog_copy = tmp_path / "catalog.json"
    catalog_copy.write_text(catalog.PACKAGED_CATALOG.read_text())
    monkeypatch.setenv("PRESETFORGE_CATALOG", str(catalog_copy))
    kaggle_target, hf_target = _kaggle(), _hf()
    args = ("publish", preset, "--to", kaggle_target, "--to", hf_target, "--name", "gpt2_base_en", "--record")

    standin_hub.faults.fail("hf.commit", times=3, status=500)
    result = cli(*args)
    _target_line(result, hf_target, fault.message)
    _target_line(result, kaggle_target, rf"^published {kaggle_target} -> {kaggle_target}/1$")
    recorded = catalog.entry("gpt2_base_en")["published"]
    assert [r["handle"] for r in recorded] == [f"{kaggle_target}/1"]
    assert recorded[0]["manifest_sha256"] == sha256_file(preset / MANIFEST_FILE)
    assert len(standin_hub.requests_to("/commit/")) == 3 and hf.manifest_sha(HF_REPO) is None

    outcomes = publish.publish(preset, [kaggle_target, hf_target], name="gpt2_base_en", record=True)
    assert [o.status for o in outcomes] == ["up to date", "published"]
    assert len(catalog.entry("gpt2_base_en")["published"]) == 2
    assert standin_hub.kaggle.versions(*KAGGLE) == [1]  # the retry uploaded to the missing target alone
    result = cli(*args)
    assert result.exit_code == 0 and result.stdout.startswith(f"up to date {kaggle_target}"), result.output


# --- hostile file names -----------------------------------------------------------------------


def test_kaggle_hostile_file_name(served, sleeps, verified, tmp_path):
    fault = CASE["kaggle-hostile-file-name"]
    outside = tmp_path / "outside" / "x"
    cache = Path(os.environ["KAGGLEHUB_CACHE"])
    fillers = {f"filler-{i:02}.txt": b"." for i in range(30)}  # more than kagglehub fetches file by file
    cases = {"dotdot": {"../x": b"evil"}, "absolute": {str(outside): b"evil"}, "archive": {"../x": b"evil", **fillers}}
    for variation, hostile in cases.items():  # beside a whole preset, which would load without the extra file
        served.kaggle.put_version(*KAGGLE[:3], variation, {**_files(verified[1]), **hostile})
        _raises(HubError, fault, lambda: Backbone.from_preset(_kaggle(variation)))
    assert served.requests_to("DownloadModelInstanceVersion") == []  # refused before kagglehub fetched a byte
    assert not outside.exists() and [p for p in cache.rglob("*") if p.is_file()] == []


def test_hf_hostile_file_name(served, sleeps, verified, tmp_path):
    fault = CASE["hf-hostile-file-name"]
    served.hf.put_files(OTHER_REPO, {**_files(verified[1]), "../x": b"evil"})
    cache = Path(os.environ["HF_HUB_CACHE"])
    _raises(HubError, fault, lambda: Backbone.from_preset(_hf(OTHER_REPO)))
    served.hf.put_files(CHECKPOINT_REPO, {"../x": b"evil"})
    assert_one_clear_line(cli("convert", _hf(CHECKPOINT_REPO), "-o", tmp_path / "out"), fault.message)
    assert [p for p in cache.parent.rglob("x")] == [] and not (tmp_path / "out").exists()
