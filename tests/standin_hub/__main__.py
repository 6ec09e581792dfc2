"""Run the stand-in by hand: ``python -m tests.standin_hub [SCRATCH_DIR]``.

Prints the environment that points huggingface_hub and kagglehub (hence ``presetforge``) at it,
as shell ``export`` lines, then serves on 127.0.0.1 until interrupted.
"""

import shlex
import sys
import tempfile
import time
from pathlib import Path

from tests.standin_hub.server import StandinHub


def main(argv):
    scratch = Path(argv[0]) if argv else Path(tempfile.mkdtemp(prefix="standin-hub-"))
    with StandinHub() as hub:
        for sub in ("hf-home/hub", "kaggle-config", "kagglehub", "home"):
            (scratch / sub).mkdir(parents=True, exist_ok=True)
        for name in StandinHub.CLIENT_ENV_UNSET:
            print(f"unset {name}")
        for name, value in hub.client_env(scratch).items():
            print(f"export {name}={shlex.quote(value)}")
        print(f"# stand-in hub serving at {hub.url}; Ctrl-C stops it", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main(sys.argv[1:])
