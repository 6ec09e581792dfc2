"""The only module that talks to the hubs, and only through their real clients.

Hugging Face goes through ``huggingface_hub`` (``HfApi.create_repo``/``create_commit``,
``snapshot_download``, ``hf_hub_download``); Kaggle through ``kagglehub`` (``model_upload``,
``model_download``) and the kagglesdk client it builds (for version numbers). Both are driven by
their standard environment, read at call time so one process can be re-pointed:
``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HUB_CACHE``/``HF_HOME``, ``HF_HUB_OFFLINE``;
``KAGGLE_API_ENVIRONMENT``, ``KAGGLE_API_TOKEN``, ``KAGGLE_USERNAME``/``KAGGLE_KEY``,
``KAGGLEHUB_CACHE`` (and ``HTTP(S)_PROXY``, which both clients honour).

Every client failure leaves as one ``HubError`` subclass with one clear line. A transient failure
(HTTP 5xx/429, a timeout, a connection that broke off, a download that arrived shorter than
announced or with the wrong checksum) is retried with backoff wherever that is safe: every read
(downloads, repo info, version numbers, manifest lookups) is, a Hugging Face commit is
content-addressed (an identical retry is a no-op), and a Kaggle upload is retried only when Kaggle
confirms that no new version appeared. Refusals (401, 403, 404) are never retried.

Neither client leaves a damaged download behind as complete: huggingface_hub compares each file's
size with the one announced and keeps a short one as ``.incomplete`` (resumed by the next try);
kagglehub checks the size and md5 Kaggle sends and deletes a mismatching file, and marks a version
complete only once every file arrived. Two gaps in the clients are closed here: huggingface_hub
sends its repo-info and file-listing requests without a timeout (see ``_hf_bounded_reads``), and
kagglehub writes each file of a small version to ``os.path.join(target, name)`` with the name as
Kaggle lists it, so a listed ``../x`` or ``/x`` would land outside its target (see
``_refuse_unsafe_names``; the archive kagglehub unpacks for larger versions goes through
``zipfile``/``tarfile`` extraction, which keeps every member inside). huggingface_hub itself
refuses such names. One gap stays open: kagglesdk sends every request without a timeout and has
no setting for one, so a Kaggle that accepts a connection and never answers is not bounded here.
"""

import contextlib
import contextvars
import errno
import logging
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

from presetforge.errors import (
    GatedError,
    HandleError,
    HubError,
    NotFoundError,
    OfflineError,
    PresetError,
    UnauthorizedError,
)
from presetforge.preset import MANIFEST_FILE, sha256_file

logger = logging.getLogger(__name__)

RETRY_ATTEMPTS = 3  # tries of one idempotent hub step that failed transiently (see _is_transient)
RETRY_BACKOFF_S = 1.0  # first pause between tries; doubles each time
_SKIP_DIRS = (".git", ".cache/huggingface")  # client bookkeeping, never preset content
HF_PLUMBING = (".gitattributes",)  # files the Hub adds to every repo; not part of a preset


# --- credentials ------------------------------------------------------------------------------


def credentials_problem(target):
    """Why publishing to ``target`` would fail for lack of credentials, or ``None``.

    ``target`` is ``"hf"``/``"kaggle"``, a handle string or a parsed handle. Checked before any
    work so a publish run does not convert and verify a preset only to stop at the upload.
    """
    if _kind(target) == "hf":
        from huggingface_hub import get_token

        try:
            token = get_token()
        except Exception as e:  # e.g. a misconfigured OIDC exchange
            return f"Hugging Face credentials are unusable: {e}"
        if not token:
            return "no Hugging Face token: set HF_TOKEN (or run `hf auth login`)"
        return None
    from kagglehub.config import get_kaggle_credentials

    try:
        credentials = get_kaggle_credentials()
    except ValueError as e:
        return f"Kaggle credentials are unreadable: {e}"
    if credentials is None:
        return "no Kaggle credentials: set KAGGLE_API_TOKEN, or KAGGLE_USERNAME and KAGGLE_KEY"
    return None


def _kind(target):
    if isinstance(target, str):
        if target in ("hf", "kaggle"):
            return target
        if target.startswith("hf://"):
            return "hf"
        if target.startswith("kaggle://"):
            return "kaggle"
    elif hasattr(target, "repo_id"):
        return "hf"
    elif hasattr(target, "variation"):
        return "kaggle"
    raise HandleError(f"not a hub target: {target!r}; expected 'hf', 'kaggle', hf://… or kaggle://…")


def _require_credentials(target):
    problem = credentials_problem(target)
    if problem:
        raise UnauthorizedError(problem)


def download(handle):
    """The local directory of a parsed ``HFHandle`` or ``KaggleHandle`` (see ``handles.parse``)."""
    if _kind(handle) == "hf":
        return download_hf(handle.repo_id, handle.revision)
    return download_kaggle(handle.owner, handle.model, handle.framework, handle.variation, handle.version)


# --- Hugging Face -----------------------------------------------------------------------------


def _hf_endpoint():
    """``HF_ENDPOINT`` now (huggingface_hub itself only reads it at import)."""
    return (os.environ.get("HF_ENDPOINT") or "").rstrip("/") or None


def _hf_endpoint_name():
    from huggingface_hub import constants

    return _hf_endpoint() or constants.ENDPOINT


def _hf_cache_dir():
    """The hub cache the environment names now, or ``None`` for the client's own default."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return os.path.expanduser(os.environ[name])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    return None


def _hf_offline():
    return (os.environ.get("HF_HUB_OFFLINE") or "").upper() in ("1", "ON", "YES", "TRUE")


def _hf_api():
    from huggingface_hub import HfApi

    return HfApi(endpoint=_hf_endpoint())


def _hf_what(repo_id, revision=None):
    return f"hf://{repo_id}" + (f"@{revision}" if revision else "")


def download_hf(repo_id, revision=None):
    """Snapshot of ``repo_id`` at ``revision`` (default: main), as a directory of regular files; its path.

    Falls back to the cached snapshot when the Hub cannot be reached, like the client does.
    The Hub's ``.gitattributes`` is left out: it is hub plumbing, not part of any preset.
    The client's snapshot is a tree of links into its blob store, and a preset follows no
    link, so the snapshot is given as hard links to those blobs (see ``_regular_files``).
    """
    from huggingface_hub import snapshot_download

    what = _hf_what(repo_id, revision)
    with _hf_errors(what, "download"), _hf_bounded_reads():
        path = _retrying(
            lambda: snapshot_download(
                repo_id,
                revision=revision,
                endpoint=_hf_endpoint(),
                cache_dir=_hf_cache_dir(),
                local_files_only=_hf_offline(),
                ignore_patterns=list(HF_PLUMBING),
            ),
            lambda e: _hf_error(what, e, "download"),
            _hf_transient,
        )
    return _regular_files(Path(path))


def _regular_files(snapshot):
    """The client's snapshot ``<hub cache>/<repo>/snapshots/<commit>`` as regular files, made once.

    Beside the hub cache (``<hub cache>-presetforge/<repo>/<commit>``, outside the tree the
    client manages): each file a hard link to the blob the snapshot's link names (a copy
    across file systems). Snapshots of a commit never change, so one made before is reused;
    it is built in a staging directory and renamed into place, so it is whole or absent.
    """
    commit, repo, hub_cache = snapshot.name, snapshot.parents[1].name, snapshot.parents[2]
    target = hub_cache.with_name(hub_cache.name + "-presetforge") / repo / commit
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{commit}.", dir=target.parent))
    try:
        for path in sorted(snapshot.rglob("*")):
            if path.is_dir():
                continue
            dest = stage / path.relative_to(snapshot)
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path.resolve(), dest)
            except OSError:
                shutil.copyfile(path, dest)
        os.rename(stage, target)
    except OSError as e:
        shutil.rmtree(stage, ignore_errors=True)
        if not (e.errno in (errno.EEXIST, errno.ENOTEMPTY) and target.is_dir()):  # made by another process meanwhile
            raise
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return target


def hf_manifest_sha(repo_id, revision=None):
    """sha256 of ``manifest.json`` at the head of ``revision``, or ``None`` if nothing is published.

    Asks the Hub (never the cache alone) which commit is current, then fetches only that one small
    file, so "is this preset already published?" is cheap and never answered from stale data.
    """
    from huggingface_hub import errors as hf_errors
    from huggingface_hub import hf_hub_download

    what = _hf_what(repo_id, revision)
    if _hf_offline():
        raise OfflineError(f"HF_HUB_OFFLINE is set: cannot ask the Hugging Face hub what {what} holds")

    def manifest_path():
        try:
            info = _hf_api().repo_info(repo_id, revision=revision)
        except hf_errors.GatedRepoError:
            raise
        except (hf_errors.RepositoryNotFoundError, hf_errors.RevisionNotFoundError):
            return None
        siblings = {s.rfilename for s in (info.siblings or [])}
        if info.siblings is not None and MANIFEST_FILE not in siblings:
            return None
        try:
            return hf_hub_download(
                repo_id,
                MANIFEST_FILE,
                revision=info.sha,  # the commit just named: immutable, safe to take from the cache
                endpoint=_hf_endpoint(),
                cache_dir=_hf_cache_dir(),
            )
        except _hf_class("RemoteEntryNotFoundError", "EntryNotFoundError"):
            return None

    with _hf_errors(what, "download"), _hf_bounded_reads():
        path = _retrying(manifest_path, lambda e: _hf_error(what, e, "download"), _hf_transient)
    return None if path is None else sha256_file(path)


def hf_head(repo_id, revision=None):
    """The commit sha ``revision`` (default: main) of ``repo_id`` points at, asked of the Hub now."""
    what = _hf_what(repo_id, revision)
    if _hf_offline():
        raise OfflineError(f"HF_HUB_OFFLINE is set: cannot ask the Hugging Face hub what {what} holds")
    with _hf_errors(what, "download"), _hf_bounded_reads():
        return _retrying(
            lambda: _hf_api().repo_info(repo_id, revision=revision).sha,
            lambda e: _hf_error(what, e, "download"),
            _hf_transient,
        )


def upload_hf(folder, repo_id, commit_message, *, private=None, revision=None):
    """Publish ``folder`` as the whole content of ``repo_id`` in one commit; the commit sha.

    One atomic ``create_commit`` (not ``upload_folder``, which in huggingface_hub 1.x+ may split a
    folder over several commits and retries them itself for half a minute): files missing from
    ``folder`` are deleted in the same commit, so the repo never holds a half-replaced preset.
    Creates the repo if needed. Re-uploading identical content makes no commit and returns the
    current head, which is also why a retry after a lost answer is safe.
    """
    folder = _existing_dir(folder)
    _require_credentials("hf")
    what = _hf_what(repo_id, revision)
    api = _hf_api()
    with _hf_errors(what, "publish"):
        _retrying(
            lambda: api.create_repo(repo_id, private=private, exist_ok=True), lambda e: _hf_error(what, e, "publish")
        )
        return _retrying(
            lambda: _commit_folder(api, folder, repo_id, commit_message, revision),
            lambda e: _hf_error(what, e, "publish"),
        )


def _commit_folder(api, folder, repo_id, commit_message, revision):
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete
    from huggingface_hub import errors as hf_errors

    local = _local_files(folder)
    try:
        remote = api.list_repo_files(repo_id, revision=revision)
    except hf_errors.RevisionNotFoundError:
        if revision not in (None, "main"):
            raise
        remote = []  # a repo without any commit yet
    operations = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(folder / p)) for p in local]
    operations += [
        CommitOperationDelete(path_in_repo=p) for p in remote if p not in set(local) and p not in HF_PLUMBING
    ]
    return api.create_commit(repo_id, operations, commit_message=commit_message, revision=revision).oid


@contextlib.contextmanager
def _hf_errors(what, action):
    try:
        yield
    except HubError:
        raise
    except Exception as e:
        error = _hf_error(what, e, action)
        if error is None:
            raise
        raise error from e


_hf_read_timeout = contextvars.ContextVar("presetforge_hf_read_timeout", default=None)


def _hf_download_timeout():
    """Seconds a Hugging Face read may wait for the hub: ``HF_HUB_DOWNLOAD_TIMEOUT`` now, else the client's."""
    from huggingface_hub import constants

    try:
        return float(os.environ["HF_HUB_DOWNLOAD_TIMEOUT"])
    except (KeyError, ValueError):
        return float(constants.HF_HUB_DOWNLOAD_TIMEOUT)


@contextlib.contextmanager
def _hf_bounded_reads():
    """Within this block, a GET or HEAD that huggingface_hub sends from this thread without any
    timeout gets ``HF_HUB_DOWNLOAD_TIMEOUT``.

    The client bounds its file transfers, but sends ``repo_info`` and the file listing of
    ``snapshot_download`` with no timeout at all, so a hub that accepts the connection and never
    answers would hang a download for ever. Only this thread's reads inside the block are touched
    (a request hook on the client's shared session, keyed by a context variable): uploads, and
    other users of huggingface_hub in the process, keep the client's own behaviour.
    """
    from huggingface_hub import get_session

    hooks = get_session().event_hooks["request"]
    if _bound_hf_read not in hooks:
        hooks.append(_bound_hf_read)
    token = _hf_read_timeout.set(_hf_download_timeout())
    try:
        yield
    finally:
        _hf_read_timeout.reset(token)


def _bound_hf_read(request):
    timeout = _hf_read_timeout.get()
    if timeout is None or request.method not in ("GET", "HEAD"):
        return
    phases = ("connect", "read", "write", "pool")
    current = request.extensions.get("timeout") or {}
    if all(current.get(phase) is None for phase in phases):
        request.extensions["timeout"] = dict.fromkeys(phases, timeout)


def _hf_transient(e):
    """``_is_transient``, seeing through the cache miss snapshot_download reports when a call failed."""
    from huggingface_hub import errors as hf_errors

    if isinstance(e, hf_errors.LocalEntryNotFoundError) and e.__cause__ is not None:
        return _hf_transient(e.__cause__)
    return _is_transient(e)


def _hf_class(*names):
    """The first of ``names`` that huggingface_hub.errors defines (names moved between releases)."""
    from huggingface_hub import errors as hf_errors

    for name in names:
        if hasattr(hf_errors, name):
            return getattr(hf_errors, name)
    return ()


def _hf_error(what, e, action):
    """The ``HubError`` for a huggingface_hub failure while doing ``action`` ("download" or
    "publish"), or ``None`` if it is not a hub failure."""
    from huggingface_hub import errors as hf_errors

    endpoint = _hf_endpoint_name()
    if isinstance(e, hf_errors.GatedRepoError):
        return GatedError(f"{what} is gated: accept its terms on the Hub with the account whose token is in HF_TOKEN")
    if isinstance(e, hf_errors.RevisionNotFoundError):
        return NotFoundError(f"{what}: no such revision on the Hugging Face hub at {endpoint}")
    if isinstance(e, _hf_class("RemoteEntryNotFoundError", "EntryNotFoundError")):
        return NotFoundError(f"{what}: no such file on the Hugging Face hub at {endpoint}")
    if isinstance(e, hf_errors.RepositoryNotFoundError):
        return NotFoundError(f"{what} not found on {endpoint} (or it is private and HF_TOKEN gives no access)")
    if isinstance(e, hf_errors.LocalEntryNotFoundError):
        cause = e.__cause__
        if isinstance(cause, hf_errors.HfHubHTTPError) or (cause is not None and _hf_transient(cause)):
            return _hf_error(what, cause, action)
        cached = "only partly in" if isinstance(e, _hf_class("IncompleteSnapshotError")) else "not in"
        if _hf_offline():
            return OfflineError(f"HF_HUB_OFFLINE is set and {what} is {cached} the local cache")
        return OfflineError(f"cannot reach the Hugging Face hub at {endpoint}, and {what} is {cached} the local cache")
    if isinstance(e, hf_errors.OfflineModeIsEnabled):
        return OfflineError(f"HF_HUB_OFFLINE is set and {what} is not in the local cache")
    if isinstance(e, hf_errors.HfHubHTTPError) and e.response is not None:
        status = e.response.status_code
        if status == 401:
            return UnauthorizedError(
                f"the Hugging Face hub at {endpoint} rejected the token for {what} (HTTP 401): check HF_TOKEN"
            )
        if status == 403 and action == "download":
            return UnauthorizedError(
                f"the token in HF_TOKEN may not read {what} (HTTP 403): check that its account has access"
            )
        if status == 403:
            return UnauthorizedError(
                f"the token in HF_TOKEN may not do this to {what} (HTTP 403): publishing needs a write token"
            )
        message = (e.server_message or str(e).splitlines()[0]).strip()
        return HubError(f"the Hugging Face hub at {endpoint} answered HTTP {status} for {what}: {message}")
    if _is_damaged_transfer(e):
        return HubError(f"the download of {what} from the Hugging Face hub at {endpoint} arrived damaged: {_short(e)}")
    if isinstance(e, ValueError) and str(e).startswith(("Invalid filename", "Invalid pointer path")):
        return HubError(f"{what} holds a file the client refuses to write: {_short(e)}")
    if _is_transport_error(e):
        if _is_unreachable(e):
            return OfflineError(f"cannot reach the Hugging Face hub at {endpoint} for {what}: {_short(e)}")
        if _is_timeout(e):
            return HubError(f"the Hugging Face hub at {endpoint} did not answer in time for {what}: {_short(e)}")
        return HubError(f"the connection to the Hugging Face hub at {endpoint} broke off for {what}: {_short(e)}")
    return None


# --- Kaggle -----------------------------------------------------------------------------------


def _kaggle_handle(owner, model, framework, variation, version=None):
    return f"{owner}/{model}/{framework}/{variation}" + (f"/{version}" if version else "")


def _kaggle_what(*parts):
    return "kaggle://" + _kaggle_handle(*parts)


def _kaggle_endpoint_name():
    from kagglesdk.kaggle_env import get_endpoint, get_env

    try:
        return get_endpoint(get_env())
    except Exception:
        return "Kaggle"


def _model_handle(owner, model, framework, variation, version=None):
    from kagglehub.handle import ModelHandle

    handle = ModelHandle(owner=owner, model=model, framework=framework, variation=variation, version=version)
    try:
        handle.framework_enum()
    except Exception:
        what = _kaggle_what(owner, model, framework, variation)
        raise HandleError(f"unknown Kaggle framework '{framework}' in {what}") from None
    return handle


def check_kaggle_framework(owner, model, framework, variation):
    """Raise ``HandleError`` unless kagglehub knows ``framework``; local, no network call."""
    _model_handle(owner, model, framework, variation)


def kaggle_latest_version(owner, model, framework, variation):
    """The newest version number of a Kaggle model instance, or ``None`` if it does not exist."""
    return _retrying(lambda: _kaggle_latest(owner, model, framework, variation, action="download"), _no_error)


def _kaggle_latest(owner, model, framework, variation, action):
    from kagglehub.clients import build_kaggle_client
    from kagglehub.exceptions import handle_call
    from kagglesdk.models.types.model_api_service import ApiGetModelInstanceRequest

    handle = _model_handle(owner, model, framework, variation)
    what = _kaggle_what(owner, model, framework, variation)
    with _kaggle_errors(what, action):
        request = ApiGetModelInstanceRequest()
        request.owner_slug = owner
        request.model_slug = model
        request.framework = handle.framework_enum()
        request.instance_slug = variation
        try:
            with build_kaggle_client() as client:
                instance = handle_call(lambda: client.models.model_api_client.get_model_instance(request))
        except Exception as e:
            if _http_status(e) == 404:
                return None
            raise
    return instance.version_number or None


def download_kaggle(owner, model, framework, variation, version=None):
    """A Kaggle model instance version (default: the latest) in kagglehub's cache; its path.

    When Kaggle cannot be reached, an unversioned request falls back to the newest complete
    version in the cache (as huggingface_hub does for a branch); a versioned one is served from
    the cache. Before kagglehub writes anything, every file name the version lists is checked
    (see ``_refuse_unsafe_names``).
    """
    parts = (owner, model, framework, variation, version)
    _model_handle(*parts)
    what = _kaggle_what(*parts)
    try:
        with _kaggle_errors(what, "download"):
            return _retrying(
                lambda: _download_kaggle_version(owner, model, framework, variation, version),
                lambda e: _kaggle_error(what, e, "download"),
            )
    except OfflineError:
        cached = None if version else _newest_cached_kaggle(owner, model, framework, variation)
        if cached is None:
            raise OfflineError(
                f"cannot reach Kaggle ({_kaggle_endpoint_name()}), and {what} is not in the local cache"
            ) from None
        logger.warning("Kaggle is unreachable; using the cached %s", cached)
        return cached


def _download_kaggle_version(owner, model, framework, variation, version):
    """One try of ``download_kaggle``: the version's number, the cache, the names, then kagglehub."""
    import kagglehub
    from kagglehub.cache import Cache

    parts = (owner, model, framework, variation)
    version = version or _kaggle_latest(*parts, action="download")
    if version is None:
        raise NotFoundError(f"{_kaggle_what(*parts)} not found on Kaggle ({_kaggle_endpoint_name()})")
    cached = Cache().load_from_cache(_model_handle(*parts, version=version))
    if cached:
        return Path(cached)
    _refuse_unsafe_names(*parts, version)
    return Path(kagglehub.model_download(_kaggle_handle(*parts, version)))


def _refuse_unsafe_names(owner, model, framework, variation, version):
    """Refuse a version that lists a file whose name would be written outside its download directory.

    kagglehub writes each file of a version of up to 25 files to ``os.path.join(target, name)``
    with the name as Kaggle lists it, so ``../x`` would land beside the target and ``/x`` anywhere.
    The same listing kagglehub then reads is checked here first, every page of it. (A larger
    version arrives as one archive, whose extraction keeps every member inside the target.)
    """
    from kagglehub.clients import build_kaggle_client
    from kagglehub.exceptions import handle_call
    from kagglesdk.models.types.model_api_service import ApiListModelInstanceVersionFilesRequest

    handle = _model_handle(owner, model, framework, variation, version)
    with build_kaggle_client() as client:
        page = None
        while page is None or page.next_page_token:
            request = ApiListModelInstanceVersionFilesRequest()
            request.owner_slug = owner
            request.model_slug = model
            request.framework = handle.framework_enum()
            request.instance_slug = variation
            request.version_number = version
            if page is not None:
                request.page_token = page.next_page_token
            page = handle_call(lambda: client.models.model_api_client.list_model_instance_version_files(request))
            for name in (f.name for f in page.files):
                if _escapes(name):
                    raise HubError(
                        f"{_kaggle_what(owner, model, framework, variation, version)} lists a file named {name!r}, "
                        "which would be written outside its download directory; refusing to download it"
                    )


def _escapes(name):
    """Whether a hub's file name, joined to a directory, could point outside it (or is no plain name)."""
    parts = name.replace("\\", "/").split("/")  # an absolute name starts with an empty part
    return "\0" in name or ":" in parts[0] or any(part in ("", ".", "..") for part in parts)


def _newest_cached_kaggle(owner, model, framework, variation):
    from kagglehub.cache import Cache, get_cached_path

    handle = _model_handle(owner, model, framework, variation, version=1)
    parent = Path(get_cached_path(handle)).parent
    numbers = sorted((int(p.name) for p in parent.glob("*") if p.name.isdigit()), reverse=True)
    for number in numbers:
        path = Cache().load_from_cache(handle.with_version(number))
        if path:
            return Path(path)
    return None


def kaggle_manifest_sha(owner, model, framework, variation, version=None):
    """sha256 of ``manifest.json`` of a version (default: the latest), or ``None`` if none is published.

    Fetches only that one file; the latest version number always comes from Kaggle itself.
    """
    import kagglehub

    version = version or kaggle_latest_version(owner, model, framework, variation)
    if version is None:
        return None
    parts = (owner, model, framework, variation, version)
    what = _kaggle_what(*parts)

    def manifest_path():
        try:
            return kagglehub.model_download(_kaggle_handle(*parts), path=MANIFEST_FILE)
        except Exception as e:
            if _http_status(e) == 404:
                return None
            raise

    with _kaggle_errors(what, "download"):
        path = _retrying(manifest_path, lambda e: _kaggle_error(what, e, "download"))
    return None if path is None else sha256_file(path)


def upload_kaggle(folder, owner, model, framework, variation, license=None, version_notes=""):  # noqa: A002
    """Publish ``folder`` as a new version of a Kaggle model instance; the version number.

    Creates the model and the instance when missing (kagglehub does). The number returned is the
    one Kaggle reports afterwards, and it must be new: nothing counts as published unless Kaggle
    confirms it. A failed try is retried only if Kaggle shows that no version was created by it.
    """
    import kagglehub

    folder = _existing_dir(folder)
    _require_credentials("kaggle")
    parts = (owner, model, framework, variation)
    _model_handle(*parts)
    what = _kaggle_what(*parts)
    before = _retrying(lambda: _kaggle_latest(*parts, action="upload"), _no_error)  # proves the credentials too
    for attempt in range(1, RETRY_ATTEMPTS + 1):
        try:
            kagglehub.model_upload(
                _kaggle_handle(*parts), str(folder), license_name=license, version_notes=version_notes
            )
            break
        except Exception as e:
            error = _kaggle_error(what, e, "upload")
            if error is None:
                raise
            after = _latest_or_unknown(*parts)
            if after != before:
                raise HubError(
                    f"Kaggle reported a failure for {what} but now holds version {after}; "
                    f"check it before publishing again ({error})"
                ) from e
            if attempt == RETRY_ATTEMPTS or not _is_transient(e):
                suffix = f" (gave up after {attempt} tries)" if attempt > 1 else ""
                raise type(error)(f"{error}{suffix}") from e
            logger.info("upload of %s failed (%s); retrying", what, error)
            time.sleep(RETRY_BACKOFF_S * 2 ** (attempt - 1))
    after = _retrying(lambda: _kaggle_latest(*parts, action="upload"), _no_error)
    if after is None or (before is not None and after <= before):
        raise HubError(f"Kaggle did not confirm a new version of {what} (latest is still {after})")
    return after


def _latest_or_unknown(*parts):
    try:
        return _kaggle_latest(*parts, action="upload")
    except HubError:
        return "unknown"


@contextlib.contextmanager
def _kaggle_errors(what, action):
    try:
        yield
    except HubError:
        raise
    except Exception as e:
        error = _kaggle_error(what, e, action)
        if error is None:
            raise
        raise error from e


def _kaggle_error(what, e, action):
    """The ``HubError`` for a kagglehub/kagglesdk failure, or ``None`` if it is not a hub failure."""
    from kagglehub import exceptions as kh_errors

    endpoint = _kaggle_endpoint_name()
    status = _http_status(e)
    if status is not None:
        if status == 401:
            return UnauthorizedError(
                f"Kaggle ({endpoint}) rejected the credentials for {what} (HTTP 401): "
                "check KAGGLE_API_TOKEN or KAGGLE_USERNAME/KAGGLE_KEY"
            )
        if status == 403 and action == "download":
            return GatedError(
                f"{what} is gated or private (HTTP 403): accept its terms on its Kaggle page with this account"
            )
        if status == 403:
            return UnauthorizedError(f"these Kaggle credentials may not publish {what} (HTTP 403)")
        if status == 404:
            return NotFoundError(f"{what} not found on Kaggle ({endpoint})")
        return HubError(f"Kaggle ({endpoint}) answered HTTP {status} for {what}: {_short(e)}")
    if isinstance(e, (kh_errors.CredentialError, kh_errors.UnauthenticatedError)):
        return UnauthorizedError(f"Kaggle credentials problem for {what}: {_short(e)}")
    if isinstance(e, kh_errors.BackendError):
        return HubError(f"Kaggle ({endpoint}) refused {what}: {_short(e)}")
    if isinstance(e, kh_errors.DataCorruptionError):
        return HubError(f"the download of {what} from Kaggle ({endpoint}) arrived damaged: its md5 does not match")
    if _is_transport_error(e):
        if _is_unreachable(e):
            return OfflineError(f"cannot reach Kaggle ({endpoint}) for {what}: {_short(e)}")
        if _is_timeout(e):
            return HubError(f"Kaggle ({endpoint}) did not answer in time for {what}: {_short(e)}")
        return HubError(f"the connection to Kaggle ({endpoint}) broke off for {what}: {_short(e)}")
    return None


# --- shared helpers ---------------------------------------------------------------------------


def _existing_dir(folder):
    folder = Path(folder)
    if not folder.is_dir():
        raise PresetError(f"cannot publish '{folder}': not a directory")
    return folder


def _local_files(folder):
    """Every file below ``folder`` as a posix relative path, minus client bookkeeping."""
    names = []
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_file() and not any(name == d or name.startswith(d + "/") for d in _SKIP_DIRS):
            names.append(name)
    return names


def _retrying(step, to_error, transient=None):
    """Run ``step`` (idempotent); on a ``transient`` failure (default: ``_is_transient``) try again,
    ``RETRY_ATTEMPTS`` tries in all, pausing ``RETRY_BACKOFF_S``, then twice that, and so on.

    The last failure leaves as ``to_error(e)`` (a ``HubError`` already raised is kept as it is),
    saying how many tries were made.
    """
    transient = transient or _is_transient
    for attempt in range(1, RETRY_ATTEMPTS + 1):
        try:
            return step()
        except Exception as e:
            if attempt < RETRY_ATTEMPTS and transient(e):
                logger.info("hub step failed (%s); retrying", _short(e))
                time.sleep(RETRY_BACKOFF_S * 2 ** (attempt - 1))
                continue
            error = e if isinstance(e, HubError) else to_error(e)
            if error is None or (error is e and attempt == 1):
                raise
            suffix = f" (gave up after {attempt} tries)" if attempt > 1 else ""
            raise type(error)(f"{error}{suffix}") from e
    raise AssertionError("unreachable")


def _no_error(e):
    """For a step that raises ``HubError`` itself: nothing else is a hub failure."""
    return None


def _http_status(e):
    """The HTTP status a client's error carries (requests, huggingface_hub), or ``None``."""
    try:
        status = getattr(getattr(e, "response", None), "status_code", None)
    except Exception:  # httpx raises RuntimeError for an unset request/response
        return None
    return status if isinstance(status, int) else None


def _transport_error_types():
    import requests

    # ChunkedEncodingError: requests' name for a response body that broke off before its end.
    types = [requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError]
    for module in ("httpx2", "httpx"):
        try:
            types.append(__import__(module).TransportError)
        except (ImportError, AttributeError):
            pass
    return tuple(types)


def _is_transport_error(e):
    return isinstance(e, _transport_error_types())


def _is_transient(e):
    """Worth another try: the hub was busy or slow, a connection broke, or a download arrived
    damaged (not a refusal, and not "unreachable", which the offline fallbacks answer)."""
    if isinstance(e, HubError):  # raised by a step of ours from the client's failure
        return e.__cause__ is not None and _is_transient(e.__cause__)
    status = _http_status(e)
    if status is not None:
        return status >= 500 or status == 429
    return _is_damaged_transfer(e) or (_is_transport_error(e) and not _is_unreachable(e))


def _is_damaged_transfer(e):
    """A download that arrived shorter than announced (huggingface_hub's size check) or with another
    md5 than Kaggle sent (kagglehub's); neither client keeps such a file as complete."""
    from kagglehub.exceptions import DataCorruptionError

    if isinstance(e, DataCorruptionError):
        return True
    return type(e) is OSError and str(e).startswith("Consistency check failed")


def _is_timeout(e):
    """Whether a transport failure is the client giving up waiting for an answer."""
    import requests

    types = [requests.Timeout, TimeoutError]
    for module in ("httpx2", "httpx"):
        try:
            types.append(__import__(module).TimeoutException)
        except (ImportError, AttributeError):
            pass
    return isinstance(e, tuple(types))


def _is_unreachable(e):
    """Whether the failure is "could not connect at all" (rather than a connection that broke)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        name = type(e).__name__
        if isinstance(e, (ConnectionRefusedError, socket.gaierror)) or name in (
            "ConnectError",
            "ConnectTimeout",
            "ProxyError",
            "NewConnectionError",
            "NameResolutionError",
        ):
            return True
        nested = [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]
        reason = getattr(e, "reason", None)
        e = e.__cause__ or e.__context__ or (nested[0] if nested else None) or (
            reason if isinstance(reason, BaseException) else None
        )
    return False


def _short(e):
    """One line about ``e``; for a connection failure, about its innermost cause."""
    if _is_transport_error(e):
        seen = set()
        while id(e) not in seen:
            seen.add(id(e))
            reason = getattr(e, "reason", None)
            nested = e.__cause__ or e.__context__ or (reason if isinstance(reason, BaseException) else None)
            if nested is None:
                nested = next((a for a in getattr(e, "args", ()) if isinstance(a, BaseException)), None)
            if nested is None:
                break
            e = nested
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
