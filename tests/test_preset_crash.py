"""A writer killed at any step of committing a preset leaves the old preset or the new one, whole.

Each case runs a write in a child process that kills itself (SIGKILL: no
cleanup of any kind) when it reaches one named step (``preset._fault_hook``),
then checks what is at the target and that later writes clean up after it.
The child imports ``presetforge.preset`` alone (no Keras), so each run is quick.
"""

import errno
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from presetforge import Backbone, atomic
from presetforge import preset as preset_lib
from tests.backbones.tiny import make

pytestmark = pytest.mark.skipif(
    sys.platform not in ("linux", "darwin"), reason="kills with SIGKILL and relies on directory locks"
)

REPO = Path(__file__).resolve().parent.parent
BEFORE = ["staged", "manifest written", "synced"]

# scenario: (what the target holds before, whether renames may exchange, the steps passed in order)
SCENARIOS = {
    "replace": ("directory", True, BEFORE + ["swapped", "parent synced", "removed"]),
    "replace a link, no exchange": (
        "link",
        False,
        BEFORE + ["versioned", "linked", "swapped", "parent synced", "removed"],
    ),
    "replace a directory, no exchange": (
        "directory",
        False,
        BEFORE + ["versioned", "linked", "retired", "swapped", "parent synced", "removed"],
    ),
    "first write": (None, True, BEFORE + ["created", "parent synced"]),
    "first write, no exchange": (None, False, BEFORE + ["versioned", "created", "parent synced"]),
}
KILLS = [(scenario, step) for scenario, (_, _, steps) in SCENARIOS.items() for step in steps]

_CHILD = textwrap.dedent(
    """
    import errno, os, shutil, signal, sys, types
    from pathlib import Path

    repo, source, target, exchange, fault = sys.argv[1:]
    package = types.ModuleType("presetforge")  # preset.py needs no more of the package: no Keras here
    package.__path__ = [os.path.join(repo, "presetforge")]
    sys.modules["presetforge"] = package
    from presetforge import atomic, preset

    def unsupported(*args):
        raise atomic.Unsupported(errno.EINVAL, "no exchange in this test")

    if exchange == "no":
        atomic.exchange = atomic.rename_noreplace = unsupported

    def kill_at(step):
        if step == fault:
            os.kill(os.getpid(), signal.SIGKILL)

    preset._fault_hook = kill_at
    with preset.writing(target, carry_over=False) as stage:
        for path in sorted(Path(source).rglob("*")):
            if path.is_file():
                shutil.copyfile(path, stage.file(path.relative_to(source).as_posix()))
    """
)


def _unsupported(*args):
    raise atomic.Unsupported(errno.EINVAL, "no exchange in this test")


def _without_exchange(monkeypatch):
    monkeypatch.setattr(atomic, "exchange", _unsupported)
    monkeypatch.setattr(atomic, "rename_noreplace", _unsupported)


def _contents(directory, label, seed):
    """Files of a preset to write: a config, a weights file large enough to be hashed in the background, an asset."""
    directory.mkdir()
    (directory / "config.json").write_text(f'{{"label": "{label}"}}\n')
    (directory / "model.weights.h5").write_bytes(np.random.default_rng(seed).bytes((1 << 20) + 4096))
    (directory / "assets" / "tokenizer").mkdir(parents=True)
    (directory / "assets" / "tokenizer" / "vocab.txt").write_text(f"{label}\n")
    return directory


def _write(source, target):
    with preset_lib.writing(target, carry_over=False) as stage:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                stage.file(path.relative_to(source).as_posix()).write_bytes(path.read_bytes())
    return preset_lib.verify(target)


def _run_child(source, target, exchange, fault):
    return subprocess.run(
        [sys.executable, "-c", _CHILD, str(REPO), str(source), str(target), "yes" if exchange else "no", fault],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def sources(tmp_path):
    return _contents(tmp_path / "old-files", "old", 1), _contents(tmp_path / "new-files", "new", 2)


def _setup(tmp_path, sources, scenario, monkeypatch):
    """The target as the scenario starts it; returns ``(target, old identity or None, new identity)``."""
    old_files, new_files = sources
    before, _, _ = SCENARIOS[scenario]
    new_identity = _write(new_files, tmp_path / "scratch" / "new")
    target = tmp_path / "presets" / "preset"
    old_identity = None
    if before is not None:
        with monkeypatch.context() as m:
            if before == "link":
                _without_exchange(m)
            old_identity = _write(old_files, target)
        assert target.is_symlink() == (before == "link")
    return target, old_identity, new_identity


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_commit_passes_exactly_these_steps(tmp_path, sources, scenario, monkeypatch):
    """The kill cases below stop at each of these steps: together they cover every boundary."""
    target, _, new_identity = _setup(tmp_path, sources, scenario, monkeypatch)
    passed = []
    monkeypatch.setattr(preset_lib, "_fault_hook", passed.append)
    if not SCENARIOS[scenario][1]:
        _without_exchange(monkeypatch)
    assert _write(sources[1], target) == new_identity
    assert passed == SCENARIOS[scenario][2]


@pytest.mark.parametrize("scenario, step", KILLS, ids=[f"{s}: {step}" for s, step in KILLS])
def test_killed_writer_leaves_the_old_or_the_new_preset(tmp_path, sources, scenario, step, monkeypatch):
    target, old_identity, new_identity = _setup(tmp_path, sources, scenario, monkeypatch)
    _, exchange, steps = SCENARIOS[scenario]
    swap = steps.index("created" if old_identity is None else "swapped")

    child = _run_child(sources[1], target, exchange, step)
    assert child.returncode == -signal.SIGKILL, child.stderr  # it did reach the step

    parent = target.parent
    if (scenario, step) == ("replace a directory, no exchange", "retired"):
        # The one window without exchange, once per target: the old preset is whole beside it.
        assert not os.path.lexists(target)
        kept = [p for p in parent.iterdir() if p.name.endswith(".version") and (p / "manifest.json").exists()]
        assert [preset_lib.verify(p) for p in kept].count(old_identity) == 1
        with pytest.raises(RuntimeError):  # a writer that fails meanwhile must not take it away
            with preset_lib.writing(target):
                raise RuntimeError("interrupted")
        assert [preset_lib.verify(p) for p in kept].count(old_identity) == 1
    elif steps.index(step) < swap:
        if old_identity is None:
            assert not os.path.lexists(target)
        else:
            assert preset_lib.verify(target) == old_identity
    else:
        assert preset_lib.verify(target) == new_identity
    assert all(p.name.startswith(".") for p in parent.iterdir() if p != target)  # leftovers are hidden

    # Later writers are not confused by what the dead one left, and clear it away.
    _write(sources[0], target)
    assert _write(sources[1], target) == new_identity
    assert sorted(os.listdir(parent)) == ["preset"]


@pytest.mark.parametrize("step", ["synced", "swapped"])
def test_from_preset_after_a_killed_replace(tmp_path, step):
    """A real backbone preset, replaced by a writer killed before or after the exchange, loads whole."""
    old, new = make("gpt2"), make("gpt2", hidden_dim=8)
    target = tmp_path / "presets" / "preset"
    old.save_to_preset(target)
    new.save_to_preset(tmp_path / "new")
    (tmp_path / "new" / "manifest.json").unlink()  # the child writes its own

    child = _run_child(tmp_path / "new", target, True, step)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert any(p.name.endswith(".staging") for p in target.parent.iterdir())  # the dead writer's stage

    expected = new if step == "swapped" else old
    loaded = Backbone.from_preset(target)
    assert loaded.hidden_dim == expected.hidden_dim
    for a, b in zip(expected.weights, loaded.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a.value), keras.ops.convert_to_numpy(b.value))
    make("gpt2").save_to_preset(target)
    assert sorted(os.listdir(target.parent)) == ["preset"]


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "no exchange"])
def test_first_write_never_clobbers_a_preset_made_meanwhile(tmp_path, sources, exchange, monkeypatch):
    target = tmp_path / "presets" / "preset"
    theirs = _write(sources[0], tmp_path / "theirs")

    def another_writer_finishes_first(step):
        if step == "synced":
            os.rename(tmp_path / "theirs", target)

    monkeypatch.setattr(preset_lib, "_fault_hook", another_writer_finishes_first)
    if not exchange:
        _without_exchange(monkeypatch)
    with pytest.raises(preset_lib.PresetError, match="another writer created .*preset meanwhile"):
        _write(sources[1], target)
    assert preset_lib.verify(target) == theirs
    assert sorted(os.listdir(target.parent)) == ["preset"]


def test_everything_is_flushed_before_the_swap_and_the_swap_after(tmp_path, sources, monkeypatch):
    target, _, _ = _setup(tmp_path, sources, "replace", monkeypatch)
    events = []
    monkeypatch.setattr(atomic, "fsync_file", lambda path: events.append(("file", Path(path))))
    monkeypatch.setattr(atomic, "fsync_directory", lambda path: events.append(("directory", Path(path))))
    monkeypatch.setattr(preset_lib, "_fault_hook", lambda step: events.append(("step", step)))
    _write(sources[1], target)

    swap = events.index(("step", "swapped"))
    directories = [path for kind, path in events[:swap] if kind == "directory"]
    stage = directories[-1]  # the stage itself after what is in it
    assert stage.name.endswith(".staging")
    assert set(directories) == {stage, stage / "assets", stage / "assets" / "tokenizer"}
    flushed = {path.relative_to(stage).as_posix() for kind, path in events[:swap] if kind == "file"}
    assert flushed == set(preset_lib._files(target)) | {"manifest.json"}
    assert events[swap + 1 : swap + 3] == [("directory", target.parent), ("step", "parent synced")]


def test_a_live_writers_stage_is_left_alone(tmp_path, sources):
    target = tmp_path / "presets" / "preset"
    _write(sources[0], target)
    stage, lock = preset_lib._new_stage(target)  # as another writer, still running, holds it
    try:
        _write(sources[1], target)
        assert stage.is_dir()
    finally:
        atomic.unlock(lock)
    _write(sources[1], target)  # its writer is gone now
    assert sorted(os.listdir(target.parent)) == ["preset"]


def test_a_lock_file_its_holder_removed_meanwhile_is_opened_again(tmp_path, monkeypatch):
    """The holder removes the lock file before releasing it: a lock then taken on the removed file is none."""
    path = tmp_path / ".preset.lock"
    locked = []
    flock = atomic.fcntl.flock

    def holder_finishes_between_open_and_lock(fd, operation):
        if not locked:
            os.unlink(path)
        locked.append(os.fstat(fd).st_ino)
        flock(fd, operation)

    monkeypatch.setattr(atomic.fcntl, "flock", holder_finishes_between_open_and_lock)
    fd = atomic.lock_file(path)
    assert len(locked) == 2 and locked[-1] == os.stat(path).st_ino == os.fstat(fd).st_ino
    assert path.read_text() == f"{os.getpid()}\n"
    atomic.unlock_file(path, fd)
    assert not path.exists()


@pytest.mark.skipif(sys.platform != "linux" or os.uname().machine not in ("x86_64", "aarch64"), reason="Linux only")
def test_exchange_through_the_raw_syscall_where_libc_lacks_renameat2(tmp_path, monkeypatch):
    class SyscallOnly:
        syscall = atomic._LIBC.syscall

    monkeypatch.setattr(atomic, "_LIBC", SyscallOnly())
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "from-a").touch()
    (tmp_path / "b").mkdir()
    atomic.exchange(tmp_path / "a", tmp_path / "b")
    assert os.listdir(tmp_path / "b") == ["from-a"] and os.listdir(tmp_path / "a") == []
    with pytest.raises(FileExistsError):
        atomic.rename_noreplace(tmp_path / "a", tmp_path / "b")
