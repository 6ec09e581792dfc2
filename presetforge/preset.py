"""Preset format v1: the files of a preset directory, their manifest, and atomic writes.

A preset is immutable once written. Writers fill a staging directory beside the
target, flush it to the disk and swap it into place in one step, so neither a
reader nor a crash ever finds half a preset (``writing``), and ``manifest.json``
(sha256 and size of every other file) lets a reader prove that what it loads
is exactly what was written (``Verification``, which also hands out, or maps,
the bytes it checked).
"""

import concurrent.futures
import contextlib
import datetime
import errno
import fnmatch
import hashlib
import json
import mmap
import os
import posixpath
import re
import secrets
import shutil
import stat
from pathlib import Path

from presetforge import atomic
from presetforge.errors import InUseError, IntegrityError, PresetError

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
MANIFEST_FILE = "manifest.json"
TOKENIZER_CONFIG_FILE = "tokenizer.json"
WEIGHTS_FILE = "model.weights.h5"
SHARDED_WEIGHTS_FILE = "model.weights.json"
REPORT_FILES = ("parity.json", "parity.md", "parity.png")
CARD_FILE = "README.md"
# Files that describe a preset rather than shape what it computes: the report is
# bound to every other file, so they are the only ones it may sit beside unbound.
UNBOUND_FILES = (METADATA_FILE, *REPORT_FILES, CARD_FILE, MANIFEST_FILE)

_SLICE = 64 << 20  # hashed per call
_CHUNK = 8 << 20  # read per call when hashing a whole file
_SMALL_RANGE = 1 << 20  # read rather than mapped
_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows would translate line ends without it
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # a link swapped in after the check is not followed either


def hash_range(digest, fd, offset, size, cancelled=None):
    """Feed ``size`` bytes of the open file ``fd`` from ``offset`` into ``digest``.

    Large ranges are memory-mapped 64 MiB at a time and each slice is hashed
    in one call, which releases the GIL for all of it: a hashing thread then
    barely competes with the main thread (with 1 MiB reads it ran 15 times
    slower beside a busy Python thread). Each slice is unmapped before the
    next, so at most one slice's pages count in the resident set.
    ``cancelled``, a ``threading.Event``, stops early with ``CancelledError``.
    """
    end = offset + size
    while offset < end:
        if cancelled is not None and cancelled.is_set():
            raise concurrent.futures.CancelledError("hashing was cancelled")
        n = min(_SLICE, end - offset)
        if not hasattr(os, "pread"):  # no positional reads here (Windows): seek and read
            os.lseek(fd, offset, os.SEEK_SET)
            data = os.read(fd, n)
            if not data:
                raise OSError(f"file ended {end - offset} bytes early")
            digest.update(data)
            offset += len(data)
            continue
        if n < _SMALL_RANGE:
            data = os.pread(fd, n, offset)
            if len(data) != n:
                raise OSError(f"file ended {end - offset - len(data)} bytes early")
            digest.update(data)
        else:
            if os.fstat(fd).st_size < offset + n:  # mapping past the end would fault (SIGBUS)
                raise OSError(f"file is shorter than {offset + n} bytes")
            base = offset - offset % mmap.ALLOCATIONGRANULARITY
            with mmap.mmap(fd, offset + n - base, offset=base, access=mmap.ACCESS_READ) as mapped:
                with memoryview(mapped) as view:
                    digest.update(view[offset - base :])
        offset += n


def _sha256_fd(fd, cancelled=None):
    """Hex sha256 of the whole open file ``fd``, read 8 MiB at a time into one buffer.

    A whole file is read rather than mapped (``hash_range``): with no page
    tables to fill it hashes a quarter to a third faster on the reference
    machine (475 MiB in 0.34 s against 0.46 s, 5 GiB in 6.3 s against 7.8 s),
    and 8 MiB per call takes the GIL seldom enough that it stays ahead beside a
    thread building a model (a 1.4 GB preset loaded in 2.9 s against 4.1 s,
    medians of 4 runs on a busy machine).
    ``cancelled``, a ``threading.Event``, stops early with ``CancelledError``.
    """
    digest = hashlib.sha256()
    size = os.fstat(fd).st_size
    if not hasattr(os, "preadv"):  # no positional reads into a buffer here (Windows)
        hash_range(digest, fd, 0, size, cancelled)
        return digest.hexdigest()
    buffer = memoryview(bytearray(min(_CHUNK, size)))
    offset = 0
    while offset < size:
        if cancelled is not None and cancelled.is_set():
            raise concurrent.futures.CancelledError("hashing was cancelled")
        n = os.preadv(fd, [buffer[: size - offset]], offset)
        if not n:
            raise OSError(f"file ended {size - offset} bytes early")
        digest.update(buffer[:n])
        offset += n
    return digest.hexdigest()


def sha256_file(path, cancelled=None):
    """Hex sha256 of a file, hashed in slices so large weights never sit in memory (see ``hash_range``)."""
    fd = os.open(path, os.O_RDONLY | _O_BINARY)
    try:
        return _sha256_fd(fd, cancelled)
    finally:
        os.close(fd)


def sha256_files(root, names, cancelled=None):
    """``{name: sha256}`` for files below ``root``, hashed in parallel threads."""
    root = Path(root)
    names = list(names)
    if len(names) <= 1:
        return {name: sha256_file(root / name, cancelled) for name in names}
    with _hash_pool(len(names)) as pool:
        return dict(zip(names, pool.map(lambda name: sha256_file(root / name, cancelled), names)))


def _not_followed(name):
    """A preset is regular files and directories only: a link would make it read (and publish)
    whatever the link names, outside the preset."""
    return IntegrityError(name, "is a symbolic link; a preset holds only regular files, so no link is followed")


def _files(root):
    """Every regular file below ``root`` except the manifest, as posix relative paths.

    A symbolic link anywhere below ``root`` is an ``IntegrityError``; nothing is followed.
    """
    names = []
    for top, dirnames, filenames in os.walk(root):
        for entry in (*dirnames, *filenames):
            path = Path(top, entry)
            name = path.relative_to(root).as_posix()
            if path.is_symlink():
                raise _not_followed(name)
            if entry in filenames and stat.S_ISREG(path.lstat().st_mode) and name != MANIFEST_FILE:
                names.append(name)
    return sorted(names)


def _usable_cores():
    """How many cores this process may run on: its CPU affinity where the system tells, else all."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _hash_pool(jobs):
    """Threads for hashing: hashlib and file reads release the GIL, so files hash in parallel."""
    workers = max(1, min(jobs, _usable_cores()))
    return concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="presetforge-sha256")


def _fingerprint(path):
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns, st.st_ino


def build_manifest(root, known=None):
    """The manifest of ``root``: sha256 and size of every file in it.

    ``known`` maps names to ``(fingerprint, sha256)`` computed earlier (see
    ``Stage.seal``); they are reused only if the file is unchanged since.
    """
    root = Path(root)
    names = _files(root)
    known = known or {}
    digests = {n: known[n][1] for n in names if n in known and known[n][0] == _fingerprint(root / n)}
    digests.update(sha256_files(root, [n for n in names if n not in digests]))
    return {
        "format_version": FORMAT_VERSION,
        "files": {name: {"sha256": digests[name], "size": (root / name).stat().st_size} for name in names},
    }


def build_date():
    """The date to write into a preset, or ``None``: ``SOURCE_DATE_EPOCH`` when set, else no date.

    The reproducible-builds convention: a preset's bytes must not depend on when
    it was made, so a wall-clock date never enters it; a release pipeline that
    wants one sets ``SOURCE_DATE_EPOCH`` (seconds since 1970, UTC).
    """
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return None
    try:
        seconds = int(epoch)
    except ValueError:
        raise PresetError(f"SOURCE_DATE_EPOCH must be an integer number of seconds, got {epoch!r}") from None
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat(timespec="seconds")


def read_json(root, name):
    """Parse ``root/name``; a missing or malformed file is a ``PresetError`` naming it."""
    path = Path(root) / name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PresetError(f"{path} is missing") from None
    return _parse_json(data, path)


def _parse_json(data, path):
    """``data``, the bytes of the file ``path``, parsed as UTF-8 JSON; else a ``PresetError`` naming it."""
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PresetError(f"{path} is not valid JSON: {e}") from None


def write_json(path, obj):
    """Write ``obj`` as stable, readable JSON (sorted keys, trailing newline)."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


_BACKGROUND_MIN_SIZE = 1 << 20  # smaller files are hashed on the spot
# Files are opened relative to the preset's directory, once, where the system allows.
_DIR_FD = os.open in os.supports_dir_fd and os.stat in os.supports_dir_fd and hasattr(os, "fwalk")


def _files_at(dir_fd):
    """``_files`` of the directory open as ``dir_fd``."""
    names = []
    for top, dirnames, filenames, top_fd in os.fwalk(".", dir_fd=dir_fd):
        for entry in (*dirnames, *filenames):
            name = posixpath.normpath(posixpath.join(top, entry))
            mode = os.stat(entry, dir_fd=top_fd, follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                raise _not_followed(name)
            if entry in filenames and stat.S_ISREG(mode) and name != MANIFEST_FILE:
                names.append(name)
    return sorted(names)


class Verification:
    """A preset's files checked against its manifest, the large ones hashed in background threads.

    Construction opens the preset's directory and each of its files once and
    checks at once everything cheap: the manifest is there, no file is missing
    or extra, every size matches, every small file (config, metadata, index)
    has its sha256. It then starts hashing the large files (the weights) and
    returns, so the caller can build the model meanwhile. ``result()`` waits
    for them and returns the preset's identity, or raises ``IntegrityError``
    naming the first file (in manifest order) that differs.

    Readers take the files from here (``read_bytes``, ``read_json``, ``open``),
    never by path again: they then read the very bytes that were hashed, even
    if the preset is replaced on disk meanwhile. (A preset's files are never
    written in place; only a rename could change what a path names.)

    As a context manager, leaving the block waits for the result and closes
    the files; an ``IntegrityError`` then supersedes any exception the block raised.
    """

    def __init__(self, root):
        root = Path(root)
        if not root.is_dir():
            raise PresetError(f"{root} is not a directory")
        self.root = root
        self._fds = {}
        self._small = {}
        self._pool = None
        self._pending = {}
        self._largest_first = []
        self._outcome = None
        self._dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY) if _DIR_FD else None
        try:
            self._check()
        except BaseException:
            self.close()
            raise

    def _open(self, name):
        try:
            if self._dir_fd is None:
                return os.open(self.root / name, os.O_RDONLY | _O_BINARY | _O_NOFOLLOW)
            return os.open(name, os.O_RDONLY | _O_NOFOLLOW, dir_fd=self._dir_fd)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise _not_followed(name) from None
            raise

    def _check(self):
        try:
            fd = self._open(MANIFEST_FILE)
        except FileNotFoundError:
            raise IntegrityError(MANIFEST_FILE, f"missing from {self.root}; is this a presetforge preset?") from None
        with os.fdopen(fd, "rb") as f:
            manifest = f.read()
        self.identity = hashlib.sha256(manifest).hexdigest()
        self._expected = _parse_json(manifest, self.root / MANIFEST_FILE).get("files", {})
        present = set(_files_at(self._dir_fd) if self._dir_fd is not None else _files(self.root))
        for name in sorted(set(self._expected) - present):
            raise IntegrityError(name, "listed in the manifest but missing")
        for name in sorted(present - set(self._expected)):
            raise IntegrityError(name, "present but not listed in the manifest")
        large = []
        for name, entry in self._expected.items():
            try:
                self._fds[name] = self._open(name)
            except FileNotFoundError:  # removed since the listing
                raise IntegrityError(name, "listed in the manifest but missing") from None
            size = os.fstat(self._fds[name]).st_size
            if size != entry["size"]:
                raise IntegrityError(name, f"size is {size} bytes, manifest says {entry['size']}")
            if size >= _BACKGROUND_MIN_SIZE:
                large.append(name)
        for name, entry in self._expected.items():
            if name not in large:
                with self.open(name) as f:
                    data = f.read()
                if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                    raise IntegrityError(name, "sha256 does not match the manifest")
                self._small[name] = data
        # One core is left to the caller, which builds the model meanwhile and, once it waits,
        # hashes the files no thread has started (``result``).
        self._pool = _hash_pool(min(len(large), _usable_cores() - 1)) if large else None
        # Largest first: the longest hash starts at once and bounds the wait
        # (one file's sha256 is sequential, so the largest file's hash is the floor).
        self._largest_first = sorted(large, key=lambda name: -self._expected[name]["size"])
        futures = {name: self._pool.submit(_sha256_fd, self._fds[name]) for name in self._largest_first}
        self._pending = {name: futures[name] for name in large}  # manifest order: the first mismatch is named

    @property
    def manifest_files(self):
        """The manifest's ``files`` entries (name → sha256 and size), as read once and checked."""
        return dict(self._expected)

    @property
    def files(self):
        """The names of the preset's files, as its manifest lists them (the manifest itself aside)."""
        return list(self._expected)

    def result(self):
        """Wait for the background hashes; the preset's identity, or ``IntegrityError``.

        The files no thread has started yet are hashed here, largest first,
        rather than waited for: the waiting thread's core works too.
        """
        if self._outcome is None:
            try:
                here = {}
                for name in self._largest_first:
                    if self._pending[name].cancel():  # not started: no thread will start it now
                        here[name] = _sha256_fd(self._fds[name])
                for name, future in self._pending.items():
                    digest = here[name] if name in here else future.result()
                    if digest != self._expected[name]["sha256"]:
                        raise IntegrityError(name, "sha256 does not match the manifest")
                self._outcome = self.identity
            except IntegrityError as e:
                self._outcome = e
            finally:
                if self._pool is not None:
                    self._pool.shutdown(wait=True, cancel_futures=True)
        if isinstance(self._outcome, IntegrityError):
            raise self._outcome
        return self._outcome

    def open(self, name):
        """An unbuffered binary file reading the verified file ``name``, from its start.

        It shares the verified descriptor's position: read one at a time per
        file. A large file is handed out only once its hash matched (this waits).
        """
        if name not in self._fds:
            raise PresetError(f"{self.root / name} is missing")
        if name in self._pending:
            self.result()
        f = os.fdopen(os.dup(self._fds[name]), "rb", buffering=0)
        f.seek(0)
        return f

    def map(self, name):
        """A private, copy-on-write memory map of the verified file ``name``; waits for its hash.

        Nothing is read until a page is touched, and a page written is copied
        first, so writes never reach the file. It maps the descriptor opened and
        hashed here, so renaming or replacing the preset on disk changes nothing
        in it. What remains: a page not yet written is the file's page in the
        system's cache, so a process writing this very file in place (``cp``
        over it, not a rename) would change what the mapping holds, or, if it
        shortened the file, fault on access (SIGBUS). Presets are immutable and
        presetforge never writes one in place.
        """
        if name not in self._fds:
            raise PresetError(f"{self.root / name} is missing")
        if name in self._pending:
            self.result()
        return mmap.mmap(self._fds[name], 0, access=mmap.ACCESS_COPY)

    def read_bytes(self, name):
        """The verified bytes of the file ``name``."""
        if name in self._small:
            return self._small[name]
        with self.open(name) as f:
            return f.read()

    def read_json(self, name):
        """The verified file ``name`` parsed as JSON; malformed JSON is a ``PresetError`` naming it."""
        return _parse_json(self.read_bytes(name), self.root / name)

    def close(self):
        """Stop hashing and close the files (readers from ``open`` keep their own)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.result()
                return False
            try:
                self.result()
            except IntegrityError as integrity:
                raise integrity from exc
            return False
        finally:
            self.close()


def verify(root):
    """Check every file of a preset against its manifest; return the preset's identity.

    The identity is the sha256 of ``manifest.json`` itself. Any missing,
    unexpected, resized or altered file raises ``IntegrityError`` naming it.
    Large files are hashed in parallel threads.
    """
    with Verification(root) as verification:
        return verification.result()


_WEIGHTS_PATTERNS = (WEIGHTS_FILE, SHARDED_WEIGHTS_FILE, "model_*.weights.h5")


def weights_files(root):
    """The weight files of a preset (single file, or sharded index plus shards), sorted."""
    root = Path(root)
    return sorted(p.relative_to(root).as_posix() for pattern in _WEIGHTS_PATTERNS for p in root.glob(pattern))


def weights_digest(root, manifest_files=None):
    """One sha256 over the preset's weight files, by their manifest entries.

    LoRA files are tied to this value: it changes when any weight byte does,
    and only then. ``manifest_files``, the manifest's ``files`` as already
    read (by a ``Verification``), saves reading it again.
    """
    files = manifest_files if manifest_files is not None else read_json(root, MANIFEST_FILE)["files"]
    names = sorted(n for n in files if any(fnmatch.fnmatchcase(n, p) for p in _WEIGHTS_PATTERNS))
    if not names:
        raise PresetError(f"{root} holds no weights")
    joined = "".join(f"{name}:{files[name]['sha256']}\n" for name in names)
    return hashlib.sha256(joined.encode()).hexdigest()


def behaviour_digest(root):
    """One sha256 over every file that shapes what the preset computes, by their manifest entries.

    That is every file but ``UNBOUND_FILES``: config, weights, tokenizer and
    assets. A parity report is bound to this value, so editing any of those
    files (the manifest rewritten or not) un-verifies the preset, while
    writing the report, its metadata summary and the model card does not.
    """
    files = read_json(root, MANIFEST_FILE)["files"]
    bound = sorted(name for name in files if name not in UNBOUND_FILES)
    if not any(name in files for name in weights_files(root)):
        raise PresetError(f"{root} holds no weights")
    joined = "".join(f"{name}:{files[name]['sha256']}:{files[name]['size']}\n" for name in bound)
    return hashlib.sha256(joined.encode()).hexdigest()


class Stage:
    """A staging directory being filled; ``file()`` hands out paths safe to write."""

    def __init__(self, root):
        self.root = Path(root)
        self._sealed = {}
        self._pool = None

    def seal(self, name, digest=None):
        """Declare the staged file ``name`` final, for the manifest to reuse its sha256.

        ``digest``, a callable returning the file's sha256, comes from a writer
        that hashed the file while writing it; without one the file is hashed
        now, in a background thread, overlapping whatever is written next. A
        sealed file changed afterwards is simply hashed again.
        """
        path = self.root / name
        fingerprint = _fingerprint(path)
        if digest is None:
            if self._pool is None:
                self._pool = _hash_pool(2)
            digest = self._pool.submit(sha256_file, path).result
        self._sealed[Path(name).as_posix()] = (fingerprint, digest)

    def _known_digests(self):
        return {name: (fingerprint, digest()) for name, (fingerprint, digest) in self._sealed.items()}

    def _close(self):
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def file(self, name):
        """A writable path for ``name``: parents created, any linked old copy unlinked.

        Files carried over from an existing preset are hard links to it, so
        they must be replaced, never written through.
        """
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        return path

    def remove(self, pattern):
        """Delete the staged files matching a glob pattern (say, old weight shards)."""
        for path in self.root.glob(pattern):
            path.unlink()


def _carry_over(source, stage_root):
    """Hard-link (or copy, across devices) a verified preset's files into the stage."""
    verify(source)
    for name in _files(source):
        dest = stage_root / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source / name, dest)
        except OSError:
            shutil.copy2(source / name, dest)


# -- committing a stage ----------------------------------------------------------

_fault_hook = None
"""Tests only: a callable given the name of each step of a commit as ``writing`` passes it
(``_step``), so a test can kill the process between any two."""


def _step(name):
    if _fault_hook is not None:
        _fault_hook(name)


def _sibling(target, kind):
    """A fresh hidden name beside ``target`` for a ``kind`` of transient entry (see ``_leftover_pattern``)."""
    return target.with_name(f".{target.name}.{secrets.token_hex(8)}.{kind}")


def _leftover_pattern(target):
    """What writers of ``target`` name their transient entries: stages, versions (where there is
    no exchange, see ``_swap_into_place``) and the links that swap versions in."""
    return re.compile(rf"\.{re.escape(target.name)}\.[0-9a-f]{{16}}\.(staging|version|link)")


def _new_stage(target):
    """A new staging directory beside ``target`` and the lock that marks it live, as ``(path, lock)``.

    It is made under another name and renamed once locked, so no other writer
    ever sees it unlocked while this process lives (see ``_remove_leftovers``).
    """
    birth = _sibling(target, "new")
    os.mkdir(birth)
    lock = None
    try:
        lock = atomic.lock_directory(birth)
        root = birth.with_suffix(".staging")
        os.rename(birth, root)
    except BaseException:
        atomic.unlock(lock)
        shutil.rmtree(birth, ignore_errors=True)
        raise
    return root, lock


def _in_use(target, entry):
    """Whether the leftover ``entry`` may still be needed: the version ``target`` links to, or any
    version while ``target`` is missing (a replace that died in its one window left the old preset there)."""
    if not _is_version_of(target, entry.name):
        return False
    if not os.path.lexists(target):
        return True
    return target.is_symlink() and os.readlink(target) == entry.name


def _discard(path):
    """Remove a file, link or directory tree; what is already gone is no error."""
    if os.path.islink(path) or os.path.isfile(path):
        Path(path).unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _remove_leftovers(target):
    """Remove what dead writers of ``target`` left beside it: stages, unused versions, links.

    Only entries no live process holds (their lock can be taken) are touched,
    and never one still in use (``_in_use``). Where the system has no locks, nothing is.
    """
    pattern = _leftover_pattern(target)
    for entry in target.parent.iterdir():
        if not pattern.fullmatch(entry.name) or _in_use(target, entry):
            continue
        try:
            lock = atomic.lock_directory(entry)
        except OSError:  # gone meanwhile, or a link to a version that is: the link is garbage
            if entry.is_symlink() and not entry.exists():
                _discard(entry)
            continue
        if lock is None:
            continue
        try:
            if not _in_use(target, entry):
                _discard(entry)
        finally:
            atomic.unlock(lock)


def _sync_tree(root):
    """Flush every file below ``root``, then every directory, deepest first, to the disk."""
    for top, _, filenames in os.walk(root, topdown=False):
        for filename in filenames:
            atomic.fsync_file(os.path.join(top, filename))
        atomic.fsync_directory(top)


@contextlib.contextmanager
def writing(target, carry_over=True):
    """Stage a preset for ``target`` and swap it into place when the block succeeds.

    If ``target`` already holds a preset and ``carry_over`` is true, its files
    are carried into the stage first, so several writers (backbone, tokenizer,
    parity report) can each add their part; with ``carry_over=False`` the new
    preset replaces it whole. A failure anywhere, or a crash at any moment,
    leaves ``target`` holding the old preset or the new one, whole (see
    ``_swap_into_place``), and the new one is on the disk before it is in place.
    What a crashed writer left beside the target is removed by the next one.
    Any exception (``KeyboardInterrupt`` and ``SystemExit`` included) discards the stage.

    One process at a time writes a target: while another holds its lock
    (``_sole_writer``), this raises ``InUseError`` before touching anything.
    """
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    with _sole_writer(target):
        is_preset = (target / MANIFEST_FILE).is_file()
        existed = os.path.lexists(target)
        if existed and not is_preset and (not target.is_dir() or any(target.iterdir())):
            raise PresetError(f"{target} exists and is not a preset; refusing to overwrite it")
        _remove_leftovers(target)
        stage_root, lock = _new_stage(target)
        stage = Stage(stage_root)
        try:
            if is_preset and carry_over:
                _carry_over(target, stage_root)
            yield stage
            _step("staged")
            write_json(stage_root / MANIFEST_FILE, build_manifest(stage_root, stage._known_digests()))
            stage._close()
            _step("manifest written")
            _sync_tree(stage_root)
            _step("synced")
            _swap_into_place(stage_root, target, replace=existed)
        except BaseException:
            stage._close()
            _discard(stage_root)
            raise
        finally:
            atomic.unlock(lock)


@contextlib.contextmanager
def _sole_writer(target):
    """Hold the lock that makes this process ``target``'s only writer, or raise ``InUseError``.

    The lock is a file beside the target, ``.<name>.lock``, removed when the
    write ends; one a killed writer left is taken over by the next. Without it
    two writers would each swap in a complete preset, the later silently
    replacing the other (and, of two writers each adding a part, dropping the
    other's part).
    """
    path = target.with_name(f".{target.name}.lock")
    try:
        fd = atomic.lock_file(path)
    except atomic.LockHeld as held:
        holder = f" (pid {held.pid})" if held.pid else ""
        raise InUseError(
            f"{target} is being written by another process{holder}; try again once it has finished", held.pid
        ) from None
    try:
        yield
    finally:
        atomic.unlock_file(path, fd)


def _swap_into_place(stage_root, target, replace):
    """Put the complete, flushed stage at ``target``: a crash at any moment leaves the old preset or the new one.

    A preset already there is exchanged with the stage in one step (Linux
    ``renameat2``, macOS ``renamex_np``), then removed from the stage's path.
    Where the filesystem cannot exchange (NFS, Windows), presets live in
    versioned directories (``.<name>.<token>.version``) with ``target`` a
    symbolic link to the current one, replaced in one ``os.replace``. A
    target that is still a real directory there is moved aside first: the one
    moment, once per target, when nothing is at it; a crash then leaves the
    old preset whole in a ``.version`` directory beside it. A first write
    (``replace`` false: nothing was at the target when the write began)
    never replaces: a preset another writer put there meanwhile is a ``PresetError``.
    """
    if replace:
        retired = _replace(stage_root, target)
    else:
        retired = None
        try:
            _create(stage_root, target)
        except OSError as e:
            if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            raise PresetError(f"another writer created {target} meanwhile; not overwriting it") from None
    atomic.fsync_directory(target.parent)
    _step("parent synced")
    if retired is not None:
        _retire(retired, target)
        _step("removed")


def _versioned(stage_root, target):
    """Rename the stage to a new version directory of ``target``; return its path."""
    version = _sibling(target, "version")
    os.rename(stage_root, version)
    _step("versioned")
    return version


def _create(stage_root, target):
    """Rename the stage to the absent ``target`` without replacing anything that appears meanwhile."""
    try:
        atomic.rename_noreplace(stage_root, target)
    except atomic.Unsupported:
        version = _versioned(stage_root, target)
        try:
            os.symlink(version.name, target, target_is_directory=True)
        except FileExistsError:
            _discard(version)
            raise
        except OSError:  # no symbolic links here: the directory itself goes in
            try:
                os.rename(version, target)
            except OSError:
                _discard(version)
                raise
    _step("created")


def _replace(stage_root, target):
    """Swap the stage in for the preset at ``target``; return where the old one now is (or ``None``)."""
    try:
        atomic.exchange(stage_root, target)
        _step("swapped")
        return stage_root
    except atomic.Unsupported:
        pass
    version = _versioned(stage_root, target)
    new = version
    try:
        link = _sibling(target, "link")
        try:
            os.symlink(version.name, link, target_is_directory=True)
            new = link
            _step("linked")
        except OSError:  # no symbolic links here: the directory itself goes in
            pass
        if target.is_symlink():
            current = os.readlink(target)
            retired = target.parent / current if _is_version_of(target, current) else None
            os.replace(new, target)
        else:
            retired = _sibling(target, "version")
            os.rename(target, retired)
            _step("retired")
            try:
                os.rename(new, target)
            except BaseException:
                os.rename(retired, target)
                raise
    except BaseException:
        _discard(new)
        _discard(version)
        raise
    _step("swapped")
    return retired


def _is_version_of(target, name):
    """Whether ``name`` is one of ``target``'s version directories (a name beside it, never a path)."""
    return name.endswith(".version") and _leftover_pattern(target).fullmatch(name) is not None


def _retire(old, target):
    """Remove the old preset at ``old``: a directory, or a link whose own version directory goes too."""
    if os.path.islink(old):
        current = os.readlink(old)
        if _is_version_of(target, current):
            _discard(target.parent / current)
    _discard(old)
