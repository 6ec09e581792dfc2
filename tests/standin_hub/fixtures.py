"""pytest fixture: a fresh stand-in hub per test, with both clients pointed at it.

How each client is redirected (all through the environment, so a subprocess such as the
CLI inherits the same setup from ``hub.client_env(...)``):

- huggingface_hub: ``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HUB_CACHE``. The library copies these into
  ``huggingface_hub.constants`` at import, but ``presetforge.registry.hf`` reads them at call time
  and passes ``endpoint=``/``cache_dir=`` explicitly, and the token is re-read from ``HF_TOKEN`` on
  every call, so re-pointing in-process needs no patching for the calls presetforge makes. Two
  import-time constants are still patched to what the environment says: the token *file* path (so a
  developer's own login cannot leak in) and ``HF_HUB_DISABLE_TELEMETRY`` (with telemetry on, every
  User-Agent build fetches an "agent harness" registry from the import-time endpoint, huggingface.co).
  Do not patch ``constants.ENDPOINT`` alone: ``hf_hub_url`` swaps that prefix of its import-time URL
  template for the ``endpoint=`` argument, and a patched ENDPOINT breaks the swap.
- kagglesdk (under kagglehub): there is no variable for a custom API URL. ``KAGGLE_API_ENVIRONMENT``
  only picks a preset (``LOCALHOST`` = http://localhost on port 80, ``TEST`` = http://localhost:7777,
  which also prints every request). So the fixture sets ``LOCALHOST`` and makes the stand-in the
  HTTP proxy (``HTTP_PROXY``), which requests honours; ``NO_PROXY=127.0.0.1`` keeps the stand-in's own
  URLs (uploads, downloads, ``HF_ENDPOINT``) direct. Credentials: ``KAGGLE_USERNAME``/``KAGGLE_KEY``;
  cache: ``KAGGLEHUB_CACHE``; ``HOME`` and ``KAGGLE_CONFIG_DIR`` point at scratch directories so
  ``~/.kaggle`` files cannot leak in.
"""

import contextlib

import pytest

from tests.standin_hub.server import StandinHub


@pytest.fixture
def standin_hub(tmp_path, monkeypatch):
    """A running ``StandinHub`` whose URL the hub clients use for the duration of the test."""
    with serving(tmp_path / "standin-clients", monkeypatch) as hub:
        yield hub


@contextlib.contextmanager
def serving(scratch, monkeypatch):
    """Start a ``StandinHub``, point both clients at it through ``monkeypatch`` (client files under
    ``scratch``), yield it, stop it: the fixture's body, for fixtures of a wider scope too."""
    import huggingface_hub
    import huggingface_hub.constants
    import kagglehub.config

    hub = StandinHub().start()
    for name in StandinHub.CLIENT_ENV_UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in hub.client_env(scratch).items():
        monkeypatch.setenv(name, value)
    for sub in ("hf-home/hub", "kaggle-config", "kagglehub", "home"):
        (scratch / sub).mkdir(parents=True, exist_ok=True)
    # What the environment above would have set had it been there at import: the token file, and the
    # telemetry switch (with telemetry on, building the User-Agent fetches an "agent harness" registry
    # from the import-time endpoint, huggingface.co). constants.ENDPOINT itself is left alone: the
    # client rewrites its import-time URL templates from it to the ``endpoint=`` each call passes.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(scratch / "hf-home" / "token"))
    monkeypatch.setattr(
        huggingface_hub.constants, "HF_STORED_TOKENS_PATH", str(scratch / "hf-home" / "stored_tokens")
    )
    kagglehub.config.clear_kaggle_credentials()
    # huggingface_hub shares one HTTP client built from the environment of the moment: rebuild it
    # now, and again afterwards so no later test inherits this test's proxy settings.
    huggingface_hub.close_session()
    try:
        yield hub
    finally:
        hub.stop()
        huggingface_hub.close_session()
    assert not hub.bugs, f"the stand-in itself failed: {hub.bugs!r}"
