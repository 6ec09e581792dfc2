"""Exceptions with one clear line each, so the CLI can print them without a traceback."""

import contextlib
import re


class PresetforgeError(Exception):
    """Base class of every error presetforge raises on purpose."""


class PresetError(PresetforgeError):
    """A preset directory is malformed, of the wrong kind, or cannot be written."""


class InUseError(PresetError):
    """Another process is writing the same preset directory; ``pid`` is its process id (``None`` if unknown)."""

    def __init__(self, message, pid=None):
        self.pid = pid
        super().__init__(message)


class IntegrityError(PresetError):
    """A preset's files do not match its manifest; ``filename`` names the culprit."""

    def __init__(self, filename, reason):
        self.filename = filename
        self.reason = reason
        super().__init__(f"integrity check failed for '{filename}': {reason}")


class HandleError(PresetforgeError):
    """A preset handle is malformed or names nothing that can be loaded."""


class HubError(HandleError):
    """A hub answered with an error, or a transfer to or from it broke off."""


class NotFoundError(HubError):
    """The repo, model, revision, version or file a handle names does not exist on its hub."""


class UnauthorizedError(HubError):
    """Credentials are missing, or the hub rejected them, or they lack the permission needed."""


class GatedError(HubError):
    """The resource exists but its owner requires accepting terms before anyone may download it."""


class OfflineError(HubError):
    """The hub cannot be reached and the client's cache holds nothing that answers the request."""


class LoraError(PresetforgeError, ValueError):
    """A LoRA weights file does not fit the backbone it is loaded into."""


class ConversionError(PresetforgeError):
    """An upstream checkpoint cannot be converted faithfully; ``tensor`` names the culprit when there is one."""

    def __init__(self, message, tensor=None):
        self.tensor = tensor
        super().__init__(message)


class CheckError(PresetforgeError):
    """The parity check cannot run: its reference is incomplete, or a probe does not fit the model."""


@contextlib.contextmanager
def hdf5_errors(path):
    """Turn HDF5's multi-line I/O failures into one line.

    A full disk, say, surfaces from h5py as a ``RuntimeError`` (or an errno-less
    ``OSError``) holding HDF5's whole error stack; the ``errno`` inside it
    becomes a plain ``OSError`` naming ``path``. Anything without one is left
    as it is: it is not an I/O failure, and its traceback matters.
    """
    try:
        yield
    except (RuntimeError, OSError) as e:
        found = None if isinstance(e, OSError) and e.errno is not None else re.search(
            r"errno = (\d+), error message = '([^']*)'", str(e)
        )
        if found is None:
            raise
        raise OSError(int(found[1]), found[2], str(path)) from None
