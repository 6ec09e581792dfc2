"""Convert-on-load: ``from_preset`` given a raw HF checkpoint converts it once into a cache.

Such presets are converted, not verified: parity is the maintainer's gate (``presetforge
convert``), this is the convenience keras-hub users expect. The cache key is the checkpoint's
location and its files' sizes and modification times, so an edited checkpoint converts again.
"""

import hashlib
import logging
import os
from pathlib import Path

from presetforge import preset
from presetforge.converters.convert import convert
from presetforge.errors import PresetError

logger = logging.getLogger(__name__)


def cache_root():
    """``PRESETFORGE_CACHE``, else ``$XDG_CACHE_HOME/presetforge/converted``."""
    if os.environ.get("PRESETFORGE_CACHE"):
        return Path(os.environ["PRESETFORGE_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "presetforge" / "converted"


def _cache_key(checkpoint_dir):
    digest = hashlib.sha256(str(Path(checkpoint_dir).resolve()).encode())
    for path in sorted(Path(checkpoint_dir).rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.relative_to(checkpoint_dir)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def convert_on_load(checkpoint_dir):
    """The cached preset of a raw checkpoint, converting it first when there is none."""
    target = cache_root() / _cache_key(checkpoint_dir)
    if target.is_dir():
        try:
            preset.verify(target)
            return target
        except PresetError:
            logger.warning("cached conversion %s is damaged; converting again", target)
    logger.warning("%s is a raw checkpoint: converting it (unverified) into %s", checkpoint_dir, target)
    return convert(checkpoint_dir, target).output
