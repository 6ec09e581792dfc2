"""Write a whole directory (a night's report of a preset, a dashboard site) so that readers see
the old one or the new one, never a mix: build it beside the target, then swap it in."""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from presetforge import atomic


@contextlib.contextmanager
def directory(target):
    """Yield an empty staging directory beside ``target``; when the block succeeds it takes
    ``target``'s place in one step (``atomic.exchange`` with an existing directory, a rename
    onto a missing one). Any exception discards the stage and leaves ``target`` as it was.

    The caller has checked that ``target`` is not a file.
    """
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".staging", dir=target.parent))
    try:
        os.chmod(stage, 0o755)  # mkdtemp's 0700 would hide a published site from its web server
        yield stage
        if target.is_dir():
            _swap(stage, target)
        else:
            os.rename(stage, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)  # the stage, or after a swap the old directory


def _swap(stage, target):
    """Put ``stage`` at ``target``; the old directory ends up at ``stage``'s path."""
    try:
        atomic.exchange(stage, target)
    except atomic.Unsupported:  # NFS and the like: two renames, a moment with nothing at the target
        old = stage.with_suffix(".old")
        os.rename(target, old)
        try:
            os.rename(stage, target)
        except BaseException:
            os.rename(old, target)
            raise
        os.rename(old, stage)
