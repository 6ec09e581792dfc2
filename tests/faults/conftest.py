"""What every fault case asserts, shared: one clear line, no traceback, nothing half-written."""

import contextlib
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from presetforge.cli import main


def cli(*args):
    """Run the CLI in-process; stdout and stderr kept apart."""
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_clear_line(result, pattern, exit_code=2):
    """Exit ``exit_code`` with exactly one line on stderr, ``error: …`` matching ``pattern``, no traceback."""
    import re

    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == exit_code, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    assert re.search(pattern, lines[0]), (pattern, lines[0])
    return lines[0]


def tree(path):
    """Every entry below ``path`` with its bytes (files) or None (directories): a snapshot to compare."""
    path = Path(path)
    if not path.exists():
        return None
    return {
        p.relative_to(path).as_posix(): (p.read_bytes() if p.is_file() else None)
        for p in sorted(path.rglob("*"))
    }


@contextlib.contextmanager
def mounted_tmpfs(where, size, read_only=False):
    """A tmpfs of ``size`` bytes mounted at ``where`` (root only, as CI runs), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.fail("the tmpfs fault cases need root (CI runs as root)")
    where = Path(where)
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, f"presetforge-{uuid.uuid4().hex[:8]}", str(where)],
                   check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


@pytest.fixture
def no_network(standin_hub):
    """The stand-in hub, asserted untouched: input rejected locally never reaches a hub."""
    yield standin_hub
    assert standin_hub.log == [], standin_hub.log
