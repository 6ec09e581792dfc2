"""Test-wide setup: a private KERAS_HOME and the torch backend unless the run picks another."""

import os
import tempfile

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("KERAS_HOME", tempfile.mkdtemp(prefix="presetforge-keras-home-"))
