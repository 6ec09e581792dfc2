"""Filesystem primitives for replacing a directory in one step and making it durable.

POSIX ``rename`` cannot put a directory onto a non-empty one, so a plain
replace needs two renames and leaves a moment with nothing at the target.
Linux (``renameat2``) and macOS (``renamex_np``) can exchange two paths in one
step, and create without replacing; ``Unsupported`` says the system or the
filesystem (NFS, say) cannot, so the caller takes another way. Directory locks
tell a live writer's staging directory from one a dead process left behind;
lock files let one process at a time write a target.
"""

import ctypes
import ctypes.util
import errno
import os
import platform
import sys

try:
    import fcntl
except ImportError:  # Windows: no advisory locks
    fcntl = None


class Unsupported(OSError):
    """This system or filesystem cannot do the rename asked for in one step."""


_UNSUPPORTED_ERRNOS = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, getattr(errno, "EOPNOTSUPP", errno.ENOTSUP)}

# Linux renameat2 flags, and its syscall number where libc lacks a wrapper (glibc < 2.28).
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_RENAMEAT2_SYSCALL = {"x86_64": 316, "aarch64": 276}
# macOS renamex_np flags.
_RENAME_SWAP = 0x2
_RENAME_EXCL = 0x4


def _libc():
    if sys.platform not in ("linux", "darwin"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") if sys.platform == "darwin" else None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def _linux_rename(source, destination, flags):
    src, dst = os.fsencode(source), os.fsencode(destination)
    function = getattr(_LIBC, "renameat2", None)
    if function is not None:
        function.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
        return function(_AT_FDCWD, src, _AT_FDCWD, dst, flags)
    number = _RENAMEAT2_SYSCALL.get(platform.machine())
    if number is None:
        raise Unsupported(errno.ENOSYS, "renameat2 is not available on this machine", source, None, destination)
    _LIBC.syscall.restype = ctypes.c_long
    return _LIBC.syscall(
        ctypes.c_long(number),
        ctypes.c_int(_AT_FDCWD),
        ctypes.c_char_p(src),
        ctypes.c_int(_AT_FDCWD),
        ctypes.c_char_p(dst),
        ctypes.c_uint(flags),
    )


def _macos_rename(source, destination, flags):
    function = _LIBC.renamex_np
    function.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint)
    return function(os.fsencode(source), os.fsencode(destination), flags)


def _rename(source, destination, linux_flags, macos_flags):
    if _LIBC is None or (sys.platform == "darwin" and not hasattr(_LIBC, "renamex_np")):
        raise Unsupported(errno.ENOSYS, "no atomic exchange on this system", source, None, destination)
    if sys.platform == "linux":
        status = _linux_rename(source, destination, linux_flags)
    else:
        status = _macos_rename(source, destination, macos_flags)
    if status != 0:
        code = ctypes.get_errno()
        kind = Unsupported if code in _UNSUPPORTED_ERRNOS else OSError
        raise kind(code, os.strerror(code), os.fspath(source), None, os.fspath(destination))


def exchange(a, b):
    """Swap the directory entries ``a`` and ``b`` in one step: each then names what the other did."""
    _rename(a, b, _RENAME_EXCHANGE, _RENAME_SWAP)


def rename_noreplace(source, destination):
    """Rename ``source`` to ``destination`` in one step; ``FileExistsError`` if the destination exists."""
    _rename(source, destination, _RENAME_NOREPLACE, _RENAME_EXCL)


def fsync_file(path):
    """Flush a file's data and metadata to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_directory(path):
    """Flush a directory's entries (names created, renamed, removed) to the disk, where the system allows."""
    if not hasattr(os, "O_DIRECTORY"):  # Windows cannot open a directory; its renames are journaled
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def lock_directory(path):
    """Hold an exclusive lock on the directory ``path`` (what the path names, links followed).

    Returns a descriptor to pass to ``unlock``, or ``None`` if the lock is held
    elsewhere. The system drops a process's locks when it dies, however it dies,
    so a lock that can be taken means no live process is using the directory.
    Where there are no locks (Windows), ``None``: nothing can be proven abandoned.
    """
    if fcntl is None:
        return None
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def unlock(fd):
    """Release a lock from ``lock_directory`` (``None`` is ignored)."""
    if fd is not None:
        os.close(fd)


class LockHeld(OSError):
    """Another live process holds the lock file ``filename``; ``pid`` is its process id (``None`` if unknown)."""

    def __init__(self, path, pid):
        super().__init__(errno.EWOULDBLOCK, "held by another process", os.fspath(path))
        self.pid = pid


def lock_file(path):
    """Hold an exclusive lock on the file ``path``, created if need be, and write this process's id in it.

    Returns a descriptor to pass to ``unlock_file``, or ``None`` where there
    are no locks (Windows); raises ``LockHeld`` if a live process holds it. The
    holder removes the file before releasing it (``unlock_file``), so a lock
    taken on a file that is no longer at ``path`` is no lock at all: the file
    is opened again. The system drops a dead process's lock, so a file left
    by one is simply taken over.
    """
    if fcntl is None:
        return None
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LockHeld(path, _lock_holder(path)) from None
            try:
                current = os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
            except FileNotFoundError:
                current = False
            if current:
                try:
                    os.ftruncate(fd, 0)
                    os.write(fd, f"{os.getpid()}\n".encode())
                except BaseException:
                    os.unlink(path)
                    raise
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _lock_holder(path):
    """The process id written in the lock file ``path``, or ``None`` if none is (yet)."""
    try:
        with open(path, "rb") as f:
            return int(f.read(32))
    except (OSError, ValueError):
        return None


def unlock_file(path, fd):
    """Remove the lock file ``path``, then release the lock from ``lock_file`` (``None`` is ignored)."""
    if fd is None:
        return
    try:
        os.unlink(path)
    except FileNotFoundError:  # someone removed it meanwhile: nothing to tidy
        pass
    finally:
        os.close(fd)
