"""Kaggle Models, through its real clients only: ``kagglehub`` (``model_upload``, ``model_download``)
and the kagglesdk client it builds (for version numbers and file listings).

Driven by the clients' standard environment, read at call time: ``KAGGLE_API_ENVIRONMENT``,
``KAGGLE_API_TOKEN``, ``KAGGLE_USERNAME``/``KAGGLE_KEY``, ``KAGGLEHUB_CACHE`` (and
``HTTP(S)_PROXY``). Failures and retries follow ``transfers``; an upload is retried only when
Kaggle confirms that the failed try created no new version.

kagglehub checks the size and md5 Kaggle sends, deletes a mismatching file, and marks a version
complete only once every file arrived. One gap in it is closed here: it writes each file of a small
version to ``os.path.join(target, name)`` with the name as Kaggle lists it, so a listed ``../x`` or
``/x`` would land outside its target (see ``_refuse_unsafe_names``; the archive kagglehub unpacks
for larger versions goes through ``zipfile``/``tarfile`` extraction, which keeps every member
inside). One gap stays open: kagglesdk sends every request without a timeout and has no setting
for one, so a Kaggle that accepts a connection and never answers is not bounded here.
"""

import logging
from pathlib import Path

from presetforge.errors import GatedError, HandleError, HubError, NotFoundError, OfflineError, UnauthorizedError
from presetforge.preset import MANIFEST_FILE, sha256_file
from presetforge.registry import transfers

logger = logging.getLogger(__name__)


def credentials_problem():
    """Why publishing to Kaggle would fail for lack of credentials, or ``None``."""
    from kagglehub.config import get_kaggle_credentials

    try:
        credentials = get_kaggle_credentials()
    except ValueError as e:
        return f"Kaggle credentials are unreadable: {e}"
    if credentials is None:
        return "no Kaggle credentials: set KAGGLE_API_TOKEN, or KAGGLE_USERNAME and KAGGLE_KEY"
    return None


def _handle(owner, model, framework, variation, version=None):
    return f"{owner}/{model}/{framework}/{variation}" + (f"/{version}" if version else "")


def _what(*parts):
    return "kaggle://" + _handle(*parts)


def _endpoint_name():
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
        what = _what(owner, model, framework, variation)
        raise HandleError(f"unknown Kaggle framework '{framework}' in {what}") from None
    return handle


def check_framework(owner, model, framework, variation):
    """Raise ``HandleError`` unless kagglehub knows ``framework``; local, no network call."""
    _model_handle(owner, model, framework, variation)


def latest_version(owner, model, framework, variation):
    """The newest version number of a Kaggle model instance, or ``None`` if it does not exist."""
    return transfers.retrying(
        lambda: _latest(owner, model, framework, variation, action="download"), transfers.no_error, _transient
    )


def _latest(owner, model, framework, variation, action):
    from kagglehub.clients import build_kaggle_client
    from kagglehub.exceptions import handle_call
    from kagglesdk.models.types.model_api_service import ApiGetModelInstanceRequest

    handle = _model_handle(owner, model, framework, variation)
    what = _what(owner, model, framework, variation)
    with _errors(what, action):
        request = ApiGetModelInstanceRequest()
        request.owner_slug = owner
        request.model_slug = model
        request.framework = handle.framework_enum()
        request.instance_slug = variation
        try:
            with build_kaggle_client() as client:
                instance = handle_call(lambda: client.models.model_api_client.get_model_instance(request))
        except Exception as e:
            if transfers.http_status(e) == 404:
                return None
            raise
    return instance.version_number or None


def download(owner, model, framework, variation, version=None):
    """A Kaggle model instance version (default: the latest) in kagglehub's cache; its path.

    When Kaggle cannot be reached, an unversioned request falls back to the newest complete
    version in the cache (as huggingface_hub does for a branch); a versioned one is served from
    the cache. Before kagglehub writes anything, every file name the version lists is checked
    (see ``_refuse_unsafe_names``).
    """
    parts = (owner, model, framework, variation, version)
    _model_handle(*parts)
    what = _what(*parts)
    try:
        with _errors(what, "download"):
            return transfers.retrying(
                lambda: _download_version(owner, model, framework, variation, version),
                lambda e: _error(what, e, "download"),
                _transient,
            )
    except OfflineError:
        cached = None if version else _newest_cached(owner, model, framework, variation)
        if cached is None:
            raise OfflineError(
                f"cannot reach Kaggle ({_endpoint_name()}), and {what} is not in the local cache"
            ) from None
        logger.warning("Kaggle is unreachable; using the cached %s", cached)
        return cached


def _download_version(owner, model, framework, variation, version):
    """One try of ``download``: the version's number, the cache, the names, then kagglehub."""
    import kagglehub
    from kagglehub.cache import Cache

    parts = (owner, model, framework, variation)
    version = version or _latest(*parts, action="download")
    if version is None:
        raise NotFoundError(f"{_what(*parts)} not found on Kaggle ({_endpoint_name()})")
    cached = Cache().load_from_cache(_model_handle(*parts, version=version))
    if cached:
        return Path(cached)
    _refuse_unsafe_names(*parts, version)
    return Path(kagglehub.model_download(_handle(*parts, version)))


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
                        f"{_what(owner, model, framework, variation, version)} lists a file named {name!r}, "
                        "which would be written outside its download directory; refusing to download it"
                    )


def _escapes(name):
    """Whether a hub's file name, joined to a directory, could point outside it (or is no plain name)."""
    parts = name.replace("\\", "/").split("/")  # an absolute name starts with an empty part
    return "\0" in name or ":" in parts[0] or any(part in ("", ".", "..") for part in parts)


def _newest_cached(owner, model, framework, variation):
    from kagglehub.cache import Cache, get_cached_path

    handle = _model_handle(owner, model, framework, variation, version=1)
    parent = Path(get_cached_path(handle)).parent
    numbers = sorted((int(p.name) for p in parent.glob("*") if p.name.isdigit()), reverse=True)
    for number in numbers:
        path = Cache().load_from_cache(handle.with_version(number))
        if path:
            return Path(path)
    return None


def manifest_sha(owner, model, framework, variation, version=None):
    """sha256 of ``manifest.json`` of a version (default: the latest), or ``None`` if none is published.

    Fetches only that one file; the latest version number always comes from Kaggle itself.
    """
    import kagglehub

    version = version or latest_version(owner, model, framework, variation)
    if version is None:
        return None
    parts = (owner, model, framework, variation, version)
    what = _what(*parts)

    def manifest_path():
        try:
            return kagglehub.model_download(_handle(*parts), path=MANIFEST_FILE)
        except Exception as e:
            if transfers.http_status(e) == 404:
                return None
            raise

    with _errors(what, "download"):
        path = transfers.retrying(manifest_path, lambda e: _error(what, e, "download"), _transient)
    return None if path is None else sha256_file(path)


def upload(folder, owner, model, framework, variation, license=None, version_notes=""):  # noqa: A002
    """Publish ``folder`` as a new version of a Kaggle model instance; the version number.

    Creates the model and the instance when missing (kagglehub does). The number returned is the
    one Kaggle reports afterwards, and it must be new: nothing counts as published unless Kaggle
    confirms it. A failed try is retried only if Kaggle shows that no version was created by it.
    """
    import kagglehub

    folder = transfers.folder_to_publish(folder)
    problem = credentials_problem()
    if problem:
        raise UnauthorizedError(problem)
    parts = (owner, model, framework, variation)
    _model_handle(*parts)
    what = _what(*parts)

    def latest():
        return _latest(*parts, action="upload")

    before = transfers.retrying(latest, transfers.no_error, _transient)  # proves the credentials too
    for attempt in range(1, transfers.RETRY_ATTEMPTS + 1):
        try:
            kagglehub.model_upload(_handle(*parts), str(folder), license_name=license, version_notes=version_notes)
            break
        except Exception as e:
            error = _error(what, e, "upload")
            if error is None:
                raise
            after = _latest_or_unknown(*parts)
            if after != before:
                raise HubError(
                    f"Kaggle reported a failure for {what} but now holds version {after}; "
                    f"check it before publishing again ({error})"
                ) from e
            if attempt == transfers.RETRY_ATTEMPTS or not _transient(e):
                suffix = f" (gave up after {attempt} tries)" if attempt > 1 else ""
                raise type(error)(f"{error}{suffix}") from e
            logger.info("upload of %s failed (%s); retrying", what, error)
            transfers.pause(attempt)
    after = transfers.retrying(latest, transfers.no_error, _transient)
    if after is None or (before is not None and after <= before):
        raise HubError(f"Kaggle did not confirm a new version of {what} (latest is still {after})")
    return after


def _latest_or_unknown(*parts):
    try:
        return _latest(*parts, action="upload")
    except HubError:
        return "unknown"


def _errors(what, action):
    """Within this block, a kagglehub/kagglesdk failure leaves as its one-line ``HubError``."""
    return transfers.hub_errors(lambda e: _error(what, e, action))


def _transient(e):
    """Worth another try (``transfers.is_transient``); a download whose md5 did not match too."""
    from kagglehub.exceptions import DataCorruptionError

    return transfers.is_transient(e, lambda e: isinstance(e, DataCorruptionError))


def _error(what, e, action):
    """The ``HubError`` for a kagglehub/kagglesdk failure, or ``None`` if it is not a hub failure."""
    from kagglehub import exceptions as kh_errors

    endpoint = _endpoint_name()
    status = transfers.http_status(e)
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
        return HubError(f"Kaggle ({endpoint}) answered HTTP {status} for {what}: {transfers.short(e)}")
    if isinstance(e, (kh_errors.CredentialError, kh_errors.UnauthenticatedError)):
        return UnauthorizedError(f"Kaggle credentials problem for {what}: {transfers.short(e)}")
    if isinstance(e, kh_errors.BackendError):
        return HubError(f"Kaggle ({endpoint}) refused {what}: {transfers.short(e)}")
    if isinstance(e, kh_errors.DataCorruptionError):
        return HubError(f"the download of {what} from Kaggle ({endpoint}) arrived damaged: its md5 does not match")
    return transfers.transport_error(e, f"Kaggle ({endpoint})", what)
