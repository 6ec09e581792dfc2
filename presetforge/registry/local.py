"""The local registry: a directory laid out like the hubs, ``owner/model/variation/version``.

It is the offline default, filled only by ``publish`` (behind the same gate as
the hubs), which appends a version whenever the preset differs from the newest
one: so the newest version is always what was last published into it, the
registry's own record. A catalog name loads from it a version holding exactly
the catalog's pinned manifest; only a catalog preset never published to a hub
loads the newest local version by its name (see ``handles``).
``PRESETFORGE_REGISTRY`` names it; otherwise it lives in the user's cache directory.
"""

import os
import shutil
import tempfile
from pathlib import Path

from presetforge import preset


def default_root():
    """``PRESETFORGE_REGISTRY``, else ``$XDG_CACHE_HOME/presetforge/registry``."""
    if os.environ.get("PRESETFORGE_REGISTRY"):
        return Path(os.environ["PRESETFORGE_REGISTRY"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "presetforge" / "registry"


def versions(root, owner, model, variation):
    """The version numbers held for one variation, ascending."""
    folder = Path(root) / owner / model / variation
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit() and p.is_dir())


def latest(root, owner, model, variation):
    """The newest version's directory, or ``None``."""
    held = versions(root, owner, model, variation)
    return Path(root) / owner / model / variation / str(held[-1]) if held else None


def holding(root, owner, model, variation, manifest_sha256):
    """The newest version whose manifest has this sha256, or ``None``."""
    for version in reversed(versions(root, owner, model, variation)):
        manifest = Path(root) / owner / model / variation / str(version) / preset.MANIFEST_FILE
        if manifest.is_file() and preset.sha256_file(manifest) == manifest_sha256:
            return manifest.parent
    return None


def publish(preset_dir, root, owner, model, variation):
    """Copy a preset in as the next version; returns ``(version, path, uploaded)``.

    When the newest version already has this manifest, nothing is copied
    (``uploaded`` is false). The copy is staged and renamed, like every preset write.
    """
    identity = preset.sha256_file(Path(preset_dir) / preset.MANIFEST_FILE)
    newest = latest(root, owner, model, variation)
    if newest is not None and preset.sha256_file(newest / preset.MANIFEST_FILE) == identity:
        return int(newest.name), newest, False
    folder = Path(root) / owner / model / variation
    folder.mkdir(parents=True, exist_ok=True)
    version = (versions(root, owner, model, variation) or [0])[-1] + 1
    stage = Path(tempfile.mkdtemp(prefix=f".{version}.", suffix=".staging", dir=folder))
    try:
        shutil.copytree(preset_dir, stage, dirs_exist_ok=True)
        preset.verify(stage)
        os.rename(stage, folder / str(version))
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return version, folder / str(version), True
