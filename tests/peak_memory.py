"""Peak memory of Python code run in a child process, for the memory-bound tests.

Linux carries ``ru_maxrss`` over ``execve`` from the process that spawns the
child, so a child of the (large) pytest process would start at pytest's size
and a bound would hold vacuously. Each child is therefore spawned by a small
Python driver, which reports its children's ``ru_maxrss``
(``getrusage(RUSAGE_CHILDREN)``) after the child's own output.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

MiB = 1024**2

DRIVER = textwrap.dedent(
    """
    import json, resource, subprocess, sys
    done = subprocess.run([sys.executable, "-c", sys.argv[1]], env=json.loads(sys.argv[2]))
    if done.returncode:
        sys.exit(done.returncode)
    print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    """
)


def run_measured(code, timeout=300):
    """Run ``code`` in a fresh child; ``(its stdout lines, its peak RSS in KiB)``."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, code, json.dumps(env)], capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    return lines[:-1], int(lines[-1])


def peak_rss_kib(code, timeout=300):
    """``ru_maxrss`` (KiB) of a child running ``code``."""
    return run_measured(code, timeout)[1]
