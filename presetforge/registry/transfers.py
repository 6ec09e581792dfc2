"""What both hub clients (``hf``, ``kaggle``) share: retrying a hub step, and telling a failure
worth another try from a refusal.

Every client failure leaves as one ``HubError`` subclass with one clear line. A transient failure
(HTTP 5xx/429, a timeout, a connection that broke off, a download the client saw arrive damaged) is
retried with backoff wherever that is safe: every read (downloads, repo info, version numbers,
manifest lookups) is; what makes a write safe to repeat is each hub's own (see its module).
Refusals (401, 403, 404) are never retried.
"""

import contextlib
import logging
import socket
import time
from pathlib import Path

from presetforge.errors import HubError, OfflineError, PresetError

logger = logging.getLogger(__name__)

RETRY_ATTEMPTS = 3  # tries of one idempotent hub step that failed transiently (see is_transient)
RETRY_BACKOFF_S = 1.0  # first pause between tries; doubles each time


def pause(attempt):
    """Wait before try ``attempt + 1``: ``RETRY_BACKOFF_S``, then twice that, and so on."""
    time.sleep(RETRY_BACKOFF_S * 2 ** (attempt - 1))


def retrying(step, to_error, transient):
    """Run ``step`` (idempotent); on a ``transient`` failure try again, ``RETRY_ATTEMPTS`` tries in
    all, with ``pause`` between them.

    The last failure leaves as ``to_error(e)`` (a ``HubError`` already raised is kept as it is),
    saying how many tries were made.
    """
    for attempt in range(1, RETRY_ATTEMPTS + 1):
        try:
            return step()
        except Exception as e:
            if attempt < RETRY_ATTEMPTS and transient(e):
                logger.info("hub step failed (%s); retrying", short(e))
                pause(attempt)
                continue
            error = e if isinstance(e, HubError) else to_error(e)
            if error is None or (error is e and attempt == 1):
                raise
            suffix = f" (gave up after {attempt} tries)" if attempt > 1 else ""
            raise type(error)(f"{error}{suffix}") from e
    raise AssertionError("unreachable")


def no_error(e):
    """For a step that raises ``HubError`` itself: nothing else is a hub failure."""
    return None


@contextlib.contextmanager
def hub_errors(to_error):
    """Within this block, a client failure leaves as ``to_error(e)``, the hub's one-line
    ``HubError`` (``None``: not a hub failure, raised as it is)."""
    try:
        yield
    except HubError:
        raise
    except Exception as e:
        error = to_error(e)
        if error is None:
            raise
        raise error from e


def is_transient(e, damaged):
    """Worth another try: the hub was busy or slow, a connection broke, or ``damaged(e)`` (the
    hub's client reports a download that arrived damaged); not a refusal, and not "unreachable",
    which the offline fallbacks answer."""
    if isinstance(e, HubError):  # raised by a step of ours from the client's failure
        return e.__cause__ is not None and is_transient(e.__cause__, damaged)
    status = http_status(e)
    if status is not None:
        return status >= 500 or status == 429
    return damaged(e) or (is_transport_error(e) and not is_unreachable(e))


def http_status(e):
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


def is_transport_error(e):
    """A failure of the connection itself (requests' or httpx's), not an answer from the hub."""
    return isinstance(e, _transport_error_types())


def is_timeout(e):
    """Whether a transport failure is the client giving up waiting for an answer."""
    import requests

    types = [requests.Timeout, TimeoutError]
    for module in ("httpx2", "httpx"):
        try:
            types.append(__import__(module).TimeoutException)
        except (ImportError, AttributeError):
            pass
    return isinstance(e, tuple(types))


def is_unreachable(e):
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


def short(e):
    """One line about ``e``; for a connection failure, about its innermost cause."""
    if is_transport_error(e):
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


def folder_to_publish(folder):
    """``folder`` as a ``Path``, or ``PresetError`` when it is not a directory."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PresetError(f"cannot publish '{folder}': not a directory")
    return folder


def transport_error(e, hub, what):
    """The one-line error for ``e`` if it is a transport failure reaching ``hub`` (its name and
    address, as the messages say it) for ``what``; ``None`` for any other error."""
    if not is_transport_error(e):
        return None
    why = short(e)
    if is_unreachable(e):
        return OfflineError(f"cannot reach {hub} for {what}: {why}")
    if is_timeout(e):
        return HubError(f"{hub} did not answer in time for {what}: {why}")
    return HubError(f"the connection to {hub} broke off for {what}: {why}")
