"""The Hugging Face hub, through its real client ``huggingface_hub`` only (``HfApi.create_repo`` /
``create_commit``, ``snapshot_download``, ``hf_hub_download``).

Driven by the client's standard environment, read at call time so one process can be re-pointed:
``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HUB_CACHE``/``HF_HOME``, ``HF_HUB_OFFLINE``,
``HF_HUB_DOWNLOAD_TIMEOUT`` (and ``HTTP(S)_PROXY``). Failures and retries follow ``transfers``;
a commit is content-addressed, so an identical retry is a no-op and every step here may be retried.

huggingface_hub compares each downloaded file's size with the one announced and keeps a short one
as ``.incomplete`` (resumed by the next try), and refuses file names that would land outside its
cache. One gap in the client is closed here: it sends its repo-info and file-listing requests
without a timeout (see ``_bounded_reads``).
"""

import contextlib
import contextvars
import errno
import os
import shutil
import tempfile
from pathlib import Path

from presetforge.errors import GatedError, HubError, NotFoundError, OfflineError, UnauthorizedError
from presetforge.preset import MANIFEST_FILE, sha256_file
from presetforge.registry import transfers

_SKIP_DIRS = (".git", ".cache/huggingface")  # client bookkeeping, never preset content
PLUMBING = (".gitattributes",)  # files the Hub adds to every repo; not part of a preset


def credentials_problem():
    """Why publishing to the Hugging Face hub would fail for lack of credentials, or ``None``."""
    from huggingface_hub import get_token

    try:
        token = get_token()
    except Exception as e:  # e.g. a misconfigured OIDC exchange
        return f"Hugging Face credentials are unusable: {e}"
    if not token:
        return "no Hugging Face token: set HF_TOKEN (or run `hf auth login`)"
    return None


def _endpoint():
    """``HF_ENDPOINT`` now (huggingface_hub itself only reads it at import)."""
    return (os.environ.get("HF_ENDPOINT") or "").rstrip("/") or None


def _endpoint_name():
    from huggingface_hub import constants

    return _endpoint() or constants.ENDPOINT


def _cache_dir():
    """The hub cache the environment names now, or ``None`` for the client's own default."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return os.path.expanduser(os.environ[name])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    return None


def _offline():
    return (os.environ.get("HF_HUB_OFFLINE") or "").upper() in ("1", "ON", "YES", "TRUE")


def _api():
    from huggingface_hub import HfApi

    return HfApi(endpoint=_endpoint())


def _what(repo_id, revision=None):
    return f"hf://{repo_id}" + (f"@{revision}" if revision else "")


def download(repo_id, revision=None):
    """Snapshot of ``repo_id`` at ``revision`` (default: main), as a directory of regular files; its path.

    Falls back to the cached snapshot when the Hub cannot be reached, like the client does.
    The Hub's ``.gitattributes`` is left out: it is hub plumbing, not part of any preset.
    The client's snapshot is a tree of links into its blob store, and a preset follows no
    link, so the snapshot is given as hard links to those blobs (see ``_regular_files``).
    """
    from huggingface_hub import snapshot_download

    what = _what(repo_id, revision)
    with _errors(what, "download"), _bounded_reads():
        path = transfers.retrying(
            lambda: snapshot_download(
                repo_id,
                revision=revision,
                endpoint=_endpoint(),
                cache_dir=_cache_dir(),
                local_files_only=_offline(),
                ignore_patterns=list(PLUMBING),
            ),
            lambda e: _error(what, e, "download"),
            _transient,
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


def manifest_sha(repo_id, revision=None):
    """sha256 of ``manifest.json`` at the head of ``revision``, or ``None`` if nothing is published.

    Asks the Hub (never the cache alone) which commit is current, then fetches only that one small
    file, so "is this preset already published?" is cheap and never answered from stale data.
    """
    from huggingface_hub import errors as hf_errors
    from huggingface_hub import hf_hub_download

    what = _what(repo_id, revision)
    if _offline():
        raise OfflineError(f"HF_HUB_OFFLINE is set: cannot ask the Hugging Face hub what {what} holds")

    def manifest_path():
        try:
            info = _api().repo_info(repo_id, revision=revision)
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
                endpoint=_endpoint(),
                cache_dir=_cache_dir(),
            )
        except _error_class("RemoteEntryNotFoundError", "EntryNotFoundError"):
            return None

    with _errors(what, "download"), _bounded_reads():
        path = transfers.retrying(manifest_path, lambda e: _error(what, e, "download"), _transient)
    return None if path is None else sha256_file(path)


def head(repo_id, revision=None):
    """The commit sha ``revision`` (default: main) of ``repo_id`` points at, asked of the Hub now."""
    what = _what(repo_id, revision)
    if _offline():
        raise OfflineError(f"HF_HUB_OFFLINE is set: cannot ask the Hugging Face hub what {what} holds")
    with _errors(what, "download"), _bounded_reads():
        return transfers.retrying(
            lambda: _api().repo_info(repo_id, revision=revision).sha,
            lambda e: _error(what, e, "download"),
            _transient,
        )


def upload(folder, repo_id, commit_message, *, private=None, revision=None):
    """Publish ``folder`` as the whole content of ``repo_id`` in one commit; the commit sha.

    One atomic ``create_commit`` (not ``upload_folder``, which in huggingface_hub 1.x+ may split a
    folder over several commits and retries them itself for half a minute): files missing from
    ``folder`` are deleted in the same commit, so the repo never holds a half-replaced preset.
    Creates the repo if needed. Re-uploading identical content makes no commit and returns the
    current head, which is also why a retry after a lost answer is safe.
    """
    folder = transfers.folder_to_publish(folder)
    problem = credentials_problem()
    if problem:
        raise UnauthorizedError(problem)
    what = _what(repo_id, revision)
    api = _api()
    with _errors(what, "publish"):
        transfers.retrying(
            lambda: api.create_repo(repo_id, private=private, exist_ok=True),
            lambda e: _error(what, e, "publish"),
            _transient,
        )
        return transfers.retrying(
            lambda: _commit_folder(api, folder, repo_id, commit_message, revision),
            lambda e: _error(what, e, "publish"),
            _transient,
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
        CommitOperationDelete(path_in_repo=p) for p in remote if p not in set(local) and p not in PLUMBING
    ]
    return api.create_commit(repo_id, operations, commit_message=commit_message, revision=revision).oid


def _errors(what, action):
    """Within this block, a huggingface_hub failure leaves as its one-line ``HubError``."""
    return transfers.hub_errors(lambda e: _error(what, e, action))


_read_timeout = contextvars.ContextVar("presetforge_hf_read_timeout", default=None)


def _download_timeout():
    """Seconds a Hugging Face read may wait for the hub: ``HF_HUB_DOWNLOAD_TIMEOUT`` now, else the client's."""
    from huggingface_hub import constants

    try:
        return float(os.environ["HF_HUB_DOWNLOAD_TIMEOUT"])
    except (KeyError, ValueError):
        return float(constants.HF_HUB_DOWNLOAD_TIMEOUT)


@contextlib.contextmanager
def _bounded_reads():
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
    if _bound_read not in hooks:
        hooks.append(_bound_read)
    token = _read_timeout.set(_download_timeout())
    try:
        yield
    finally:
        _read_timeout.reset(token)


def _bound_read(request):
    timeout = _read_timeout.get()
    if timeout is None or request.method not in ("GET", "HEAD"):
        return
    phases = ("connect", "read", "write", "pool")
    current = request.extensions.get("timeout") or {}
    if all(current.get(phase) is None for phase in phases):
        request.extensions["timeout"] = dict.fromkeys(phases, timeout)


def _transient(e):
    """Worth another try (``transfers.is_transient``), seeing through the cache miss
    snapshot_download reports when a call failed."""
    from huggingface_hub import errors as hf_errors

    if isinstance(e, hf_errors.LocalEntryNotFoundError) and e.__cause__ is not None:
        return _transient(e.__cause__)
    return transfers.is_transient(e, _damaged)


def _damaged(e):
    """A download that arrived shorter than the size the Hub lists: huggingface_hub's consistency
    check, which keeps the file as ``.incomplete`` rather than complete."""
    return type(e) is OSError and str(e).startswith("Consistency check failed")


def _error_class(*names):
    """The first of ``names`` that huggingface_hub.errors defines (names moved between releases)."""
    from huggingface_hub import errors as hf_errors

    for name in names:
        if hasattr(hf_errors, name):
            return getattr(hf_errors, name)
    return ()


def _error(what, e, action):
    """The ``HubError`` for a huggingface_hub failure while doing ``action`` ("download" or
    "publish"), or ``None`` if it is not a hub failure."""
    from huggingface_hub import errors as hf_errors

    endpoint = _endpoint_name()
    if isinstance(e, hf_errors.GatedRepoError):
        return GatedError(f"{what} is gated: accept its terms on the Hub with the account whose token is in HF_TOKEN")
    if isinstance(e, hf_errors.RevisionNotFoundError):
        return NotFoundError(f"{what}: no such revision on the Hugging Face hub at {endpoint}")
    if isinstance(e, _error_class("RemoteEntryNotFoundError", "EntryNotFoundError")):
        return NotFoundError(f"{what}: no such file on the Hugging Face hub at {endpoint}")
    if isinstance(e, hf_errors.RepositoryNotFoundError):
        return NotFoundError(f"{what} not found on {endpoint} (or it is private and HF_TOKEN gives no access)")
    if isinstance(e, hf_errors.LocalEntryNotFoundError):
        cause = e.__cause__
        if isinstance(cause, hf_errors.HfHubHTTPError) or (cause is not None and _transient(cause)):
            return _error(what, cause, action)
        cached = "only partly in" if isinstance(e, _error_class("IncompleteSnapshotError")) else "not in"
        if _offline():
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
    if _damaged(e):
        return HubError(
            f"the download of {what} from the Hugging Face hub at {endpoint} arrived damaged: {transfers.short(e)}"
        )
    if isinstance(e, ValueError) and str(e).startswith(("Invalid filename", "Invalid pointer path")):
        return HubError(f"{what} holds a file the client refuses to write: {transfers.short(e)}")
    return transfers.transport_error(e, f"the Hugging Face hub at {endpoint}", what)


def _local_files(folder):
    """Every file below ``folder`` as a posix relative path, minus client bookkeeping."""
    names = []
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_file() and not any(name == d or name.startswith(d + "/") for d in _SKIP_DIRS):
            names.append(name)
    return names
