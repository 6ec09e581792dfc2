"""Preset format v1: the files of a preset directory, their manifest, and atomic writes.

A preset is immutable once written. Writers fill a staging directory beside the
target and rename it into place, so a reader never sees half a preset, and
``manifest.json`` (sha256 and size of every other file) lets a reader prove
that what it loads is exactly what was written.
"""

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from presetforge.errors import IntegrityError, PresetError

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
MANIFEST_FILE = "manifest.json"
TOKENIZER_CONFIG_FILE = "tokenizer.json"
WEIGHTS_FILE = "model.weights.h5"
SHARDED_WEIGHTS_FILE = "model.weights.json"

_CHUNK = 1 << 20


def sha256_file(path):
    """Hex sha256 of a file, read in chunks so large weights never sit in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _files(root):
    """Every regular file below ``root`` except the manifest, as posix relative paths."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in Path(root).rglob("*")
        if p.is_file() and p.relative_to(root).as_posix() != MANIFEST_FILE
    )


def build_manifest(root):
    """The manifest of ``root``: sha256 and size of every file in it."""
    root = Path(root)
    return {
        "format_version": FORMAT_VERSION,
        "files": {
            name: {"sha256": sha256_file(root / name), "size": (root / name).stat().st_size}
            for name in _files(root)
        },
    }


def read_json(root, name):
    """Parse ``root/name``; a missing or malformed file is a ``PresetError`` naming it."""
    path = Path(root) / name
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise PresetError(f"{path} is missing") from None
    except json.JSONDecodeError as e:
        raise PresetError(f"{path} is not valid JSON: {e}") from None


def write_json(path, obj):
    """Write ``obj`` as stable, readable JSON (sorted keys, trailing newline)."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def verify(root):
    """Check every file of a preset against its manifest; return the preset's identity.

    The identity is the sha256 of ``manifest.json`` itself. Any missing,
    unexpected, resized or altered file raises ``IntegrityError`` naming it.
    """
    root = Path(root)
    if not root.is_dir():
        raise PresetError(f"{root} is not a directory")
    manifest_path = root / MANIFEST_FILE
    if not manifest_path.is_file():
        raise IntegrityError(MANIFEST_FILE, f"missing from {root}; is this a presetforge preset?")
    expected = read_json(root, MANIFEST_FILE).get("files", {})
    present = set(_files(root))
    for name in sorted(set(expected) - present):
        raise IntegrityError(name, "listed in the manifest but missing")
    for name in sorted(present - set(expected)):
        raise IntegrityError(name, "present but not listed in the manifest")
    for name, entry in expected.items():
        size = (root / name).stat().st_size
        if size != entry["size"]:
            raise IntegrityError(name, f"size is {size} bytes, manifest says {entry['size']}")
    for name, entry in expected.items():
        if sha256_file(root / name) != entry["sha256"]:
            raise IntegrityError(name, "sha256 does not match the manifest")
    return sha256_file(manifest_path)


def weights_files(root):
    """The weight files of a preset (single file, or sharded index plus shards), sorted."""
    root = Path(root)
    return sorted(
        p.relative_to(root).as_posix()
        for pattern in (WEIGHTS_FILE, SHARDED_WEIGHTS_FILE, "model_*.weights.h5")
        for p in root.glob(pattern)
    )


def weights_digest(root):
    """One sha256 over the preset's weight files, by their manifest entries.

    Reports (parity) are bound to this value, so they stay valid when other
    files change and become invalid when any weight byte does.
    """
    files = read_json(root, MANIFEST_FILE)["files"]
    names = weights_files(root)
    if not names:
        raise PresetError(f"{root} holds no weights")
    missing = [n for n in names if n not in files]
    if missing:
        raise IntegrityError(missing[0], "present but not listed in the manifest")
    joined = "".join(f"{name}:{files[name]['sha256']}\n" for name in names)
    return hashlib.sha256(joined.encode()).hexdigest()


class Stage:
    """A staging directory being filled; ``file()`` hands out paths safe to write."""

    def __init__(self, root):
        self.root = Path(root)

    def file(self, name):
        """A writable path for ``name``: parents created, any linked old copy unlinked.

        Files carried over from an existing preset are hard links to it, so
        they must be replaced, never written through.
        """
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        return path

    def remove(self, pattern):
        """Delete the staged files matching a glob pattern (say, old weight shards)."""
        for path in self.root.glob(pattern):
            path.unlink()


def _carry_over(source, stage_root):
    """Hard-link (or copy, across devices) a verified preset's files into the stage."""
    verify(source)
    for name in _files(source):
        dest = stage_root / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source / name, dest)
        except OSError:
            shutil.copy2(source / name, dest)


@contextlib.contextmanager
def writing(target, carry_over=True):
    """Stage a preset for ``target`` and rename it into place when the block succeeds.

    If ``target`` already holds a preset and ``carry_over`` is true, its files
    are carried into the stage first, so several writers (backbone, tokenizer,
    parity report) can each add their part; with ``carry_over=False`` the new
    preset replaces it whole. A failure anywhere leaves ``target`` as it was.
    """
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    is_preset = (target / MANIFEST_FILE).is_file()
    if target.exists() and not is_preset and (not target.is_dir() or any(target.iterdir())):
        raise PresetError(f"{target} exists and is not a preset; refusing to overwrite it")
    stage_root = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".staging", dir=target.parent))
    try:
        if is_preset and carry_over:
            _carry_over(target, stage_root)
        yield Stage(stage_root)
        write_json(stage_root / MANIFEST_FILE, build_manifest(stage_root))
        _swap_into_place(stage_root, target)
    except BaseException:
        shutil.rmtree(stage_root, ignore_errors=True)
        raise


def _swap_into_place(stage_root, target):
    """Rename the stage onto ``target``, moving any old preset aside first."""
    if not target.exists():
        os.rename(stage_root, target)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".retired", dir=target.parent))
    os.rename(target, retired / "old")
    os.rename(stage_root, target)
    shutil.rmtree(retired, ignore_errors=True)
