"""Interruption and concurrency: a signal mid-write, or a second writer, leaves one whole preset, never a mix.

Each case runs the writer in a real child process, held at a known point of
its write (halfway through the tensors of a conversion, or the ``staged`` step
of ``preset._fault_hook``) until the test has looked at the disk and sent its
signal or started the second writer.
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from presetforge import InUseError, preset
from presetforge.converters import convert
from tests.checkpoints import make_gpt2
from tests.faults.conftest import assert_one_clear_line, cli, tree
from tests.faults.table import Fault

pytestmark = pytest.mark.skipif(sys.platform not in ("linux", "darwin"), reason="POSIX signals and locks")

AREA = "interruption and concurrency"
REPO = Path(__file__).resolve().parents[2]

FAULTS = (
    Fault("sigint-mid-conversion", AREA, "SIGINT (Ctrl-C) halfway through `presetforge convert`",
          "exit 130, no staging left, the earlier preset kept; a re-run succeeds", r"^error: interrupted by SIGINT$"),
    Fault("sigterm-mid-conversion", AREA, "SIGTERM halfway through `presetforge convert`",
          "exit 143, no staging left, the earlier preset kept; a re-run succeeds", r"^error: interrupted by SIGTERM$"),
    Fault("sighup-mid-conversion", AREA, "SIGHUP (terminal closed) halfway through `presetforge convert`",
          "exit 129, no staging left, the earlier preset kept; a re-run succeeds", r"^error: interrupted by SIGHUP$"),
    Fault("sigterm-first-conversion", AREA, "SIGTERM halfway through a conversion into a new directory",
          "exit 143, no output and no staging left; a re-run succeeds", r"^error: interrupted by SIGTERM$"),
    Fault("sigterm-save-to-preset", AREA,
          "SIGTERM while `save_to_preset` writes, in a program that uses `interrupts.signals_raise`",
          "`Interrupted` raised, no staging left, the earlier preset kept"),
    Fault("second-writer", AREA, "a second conversion into an output another process is writing",
          "exit 2 naming the writer's pid (`InUseError` from the API), nothing touched; the first writer's preset whole",
          r"is being written by another process \(pid \d+\); try again once it has finished"),
)
BY_ID = {f.id: f for f in FAULTS}
CONVERSIONS = {  # fault id: (signal, whether an earlier preset is at the output)
    "sigint-mid-conversion": (signal.SIGINT, True),
    "sigterm-mid-conversion": (signal.SIGTERM, True),
    "sighup-mid-conversion": (signal.SIGHUP, True),
    "sigterm-first-conversion": (signal.SIGTERM, False),
}

# The real command, started as a terminal starts it (these signals at their defaults, whatever
# the test runner inherited), held halfway through the tensors once READY is touched.
_HELD_CONVERSION = textwrap.dedent(
    """
    import signal, sys, time
    from pathlib import Path

    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    import presetforge.converters as converters
    from presetforge.cli import main

    ready = Path(sys.argv[1])
    convert = converters.convert

    def held(*args, progress, **kwargs):
        def advance(done, total, name):
            progress(done, total, name)
            if done == total // 2:
                ready.touch()
                time.sleep(120)

        return convert(*args, progress=advance, **kwargs)

    converters.convert = held
    main(sys.argv[2:], prog_name="presetforge")
    """
)

# A library user's program: its own choice of handlers, held at the ``staged`` step.
_HELD_SAVE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path

    from presetforge import interrupts, preset
    from tests.backbones.tiny import make

    ready, target = map(Path, sys.argv[1:])

    def hold(step):
        if step == "staged":
            ready.touch()
            time.sleep(120)

    backbone = make("gpt2")
    preset._fault_hook = hold
    try:
        with interrupts.signals_raise():
            backbone.save_to_preset(target)
    except interrupts.Interrupted as e:
        print(e, file=sys.stderr)
        sys.exit(e.exit_status)
    """
)

# Another writer that needs only preset.py (no Keras: it starts at once): it writes the files of
# SOURCE as a preset at TARGET, says "held" at the ``staged`` step and waits for a line on stdin.
_HELD_WRITER = textwrap.dedent(
    """
    import os, shutil, sys, types
    from pathlib import Path

    repo, source, target = sys.argv[1:]
    package = types.ModuleType("presetforge")
    package.__path__ = [os.path.join(repo, "presetforge")]
    sys.modules["presetforge"] = package
    from presetforge import preset

    def hold(step):
        if step == "staged":
            print("held", flush=True)
            sys.stdin.readline()

    preset._fault_hook = hold
    with preset.writing(target, carry_over=False) as stage:
        for path in sorted(Path(source).rglob("*")):
            if path.is_file() and path.name != preset.MANIFEST_FILE:
                shutil.copyfile(path, stage.file(path.relative_to(source).as_posix()))
    """
)


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    """A checkpoint, the preset converted from it, and another preset to find at the output beforehand."""
    root = tmp_path_factory.mktemp("interruption")
    source = make_gpt2(root / "hf")
    convert(source, root / "expected")
    convert(make_gpt2(root / "other-hf", seed=1), root / "earlier")
    return source, root / "expected", root / "earlier"


def _leftovers(output):
    return sorted(p.name for p in output.parent.iterdir() if p.name.startswith(f".{output.name}."))


@contextlib.contextmanager
def _child(*args, **kwargs):
    """A child Python process importing this checkout; killed if the test leaves it running."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", *args], env=env, text=True, **kwargs)
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()


def _wait_for(ready, child, timeout=120):
    deadline = time.monotonic() + timeout
    while not ready.exists():
        assert child.poll() is None, f"the writer ended early: {child.communicate()}"
        assert time.monotonic() < deadline, "the writer never reached the point it is held at"
        time.sleep(0.02)


def _interrupt(child, ready, output, signum):
    """Wait until ``child`` is held mid-write, check that it is, signal it; its ``(exit status, stderr)``."""
    _wait_for(ready, child)
    assert [p for p in _leftovers(output) if p.endswith(".staging")], "no write in progress"
    child.send_signal(signum)
    _, stderr = child.communicate(timeout=60)
    return child.returncode, stderr


@pytest.mark.parametrize("fault", [BY_ID[i] for i in CONVERSIONS], ids=lambda f: f.id)
def test_signal_mid_conversion(fault, presets, tmp_path):
    source, expected, earlier = presets
    signum, has_earlier = CONVERSIONS[fault.id]
    output = tmp_path / "out" / "preset"
    if has_earlier:
        shutil.copytree(earlier, output)
    else:
        output.parent.mkdir()
    before = tree(output)
    ready = tmp_path / "READY"
    command = [str(ready), "convert", str(source), "-o", str(output), "--no-check"]
    with _child(_HELD_CONVERSION, *command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
        status, stderr = _interrupt(child, ready, output, signum)

    lines = [line for line in stderr.splitlines() if line.strip()]
    assert status == 128 + signum, stderr
    assert len(lines) == 1 and re.search(fault.message, lines[0]) and "Traceback" not in stderr, stderr
    assert tree(output) == before and _leftovers(output) == []

    rerun = cli("convert", source, "-o", output, "--no-check")
    assert rerun.exit_code == 0, rerun.output
    assert preset.verify(output) == preset.verify(expected) and _leftovers(output) == []


def test_signal_mid_save_to_preset(presets, tmp_path):
    output = shutil.copytree(presets[2], tmp_path / "out" / "preset")
    before = tree(output)
    ready = tmp_path / "READY"
    with _child(_HELD_SAVE, str(ready), str(output), stderr=subprocess.PIPE) as child:
        status, stderr = _interrupt(child, ready, output, signal.SIGTERM)
    assert status == 128 + signal.SIGTERM and stderr.strip() == "interrupted by SIGTERM", stderr
    assert tree(output) == before and _leftovers(output) == []


def test_second_writer_is_refused_while_the_first_writes(presets, tmp_path):
    fault = BY_ID["second-writer"]
    source, expected, earlier = presets
    output = shutil.copytree(expected, tmp_path / "out" / "preset")
    before = tree(output)
    command = [str(REPO), str(earlier), str(output)]
    with _child(_HELD_WRITER, *command, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as first:
        assert first.stdout.readline() == "held\n"
        writing = _leftovers(output)  # the first writer's stage and lock

        line = assert_one_clear_line(cli("convert", source, "-o", output, "--no-check"), fault.message)
        assert f"(pid {first.pid})" in line
        with pytest.raises(InUseError, match=fault.message) as refused:
            convert(source, output)
        assert refused.value.pid == first.pid
        assert tree(output) == before and _leftovers(output) == writing

        first.stdin.write("go on\n")
        first.stdin.flush()
        assert first.wait(timeout=60) == 0
    assert preset.verify(output) == preset.verify(earlier)  # the first writer's preset, whole
    assert sorted(os.listdir(output.parent)) == ["preset"]
