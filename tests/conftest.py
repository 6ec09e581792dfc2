"""Test-wide setup: a private KERAS_HOME and the torch backend unless the run picks another."""

import os
import tempfile

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("KERAS_HOME", tempfile.mkdtemp(prefix="presetforge-keras-home-"))
os.environ["PRESETFORGE_REGISTRY"] = tempfile.mkdtemp(prefix="presetforge-registry-")
os.environ["PRESETFORGE_CACHE"] = tempfile.mkdtemp(prefix="presetforge-converted-")

# The hub stand-in (tests/standin_hub): a loopback Hugging Face Hub + Kaggle for the real clients.
from tests.standin_hub.fixtures import standin_hub  # noqa: E402, F401
