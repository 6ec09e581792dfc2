"""The built-in preset catalog, which is data (``catalog.json``), not code.

Kept low in the package map because ``Backbone.presets`` and handle resolution
both need to read it; publishing records what the hubs confirmed through
``record_published``, and a catalog name stands for exactly one preset, the
manifest of its newest record (``pin``). ``PRESETFORGE_CATALOG`` points at
another catalog file (tests, or a maintainer's working copy).
"""

import json
import os
import tempfile
from pathlib import Path

PACKAGED_CATALOG = Path(__file__).with_name("catalog.json")


def catalog_file():
    """The catalog in force: ``PRESETFORGE_CATALOG`` or the packaged one."""
    return Path(os.environ.get("PRESETFORGE_CATALOG") or PACKAGED_CATALOG)


def _load():
    with open(catalog_file(), encoding="utf-8") as f:
        return json.load(f)


def entries():
    """Every built-in preset, by name (a fresh copy the caller may change)."""
    return _load()["presets"]


def entry(name):
    """One preset's entry, or ``None`` when the catalog has no such name."""
    return entries().get(name)


def for_classes(class_names):
    """The entries whose backbone class is one of ``class_names``."""
    return {name: e for name, e in entries().items() if e["backbone_class"] in class_names}


def family(name):
    """The names of a family's presets (``gpt2``), or ``[name]`` for one preset, in catalog order."""
    presets = entries()
    members = [n for n, e in presets.items() if e["family"] == name]
    return members or ([name] if name in presets else [])


def pin(name):
    """The manifest sha256 a catalog name stands for: that of its newest confirmed publication
    (records are appended as hubs confirm them, so the last one), or ``None`` before any."""
    published = entry(name)["published"]
    return published[-1]["manifest_sha256"] if published else None


def publications(name, manifest_sha256):
    """The records of ``name`` that hold ``manifest_sha256``, newest first: where that exact
    preset can be downloaded from."""
    return [r for r in reversed(entry(name)["published"]) if r["manifest_sha256"] == manifest_sha256]


def _target(handle):
    """The place a publication handle points into, without its revision or version:
    ``hf://org/repo@sha`` → ``hf://org/repo``, ``kaggle://o/m/f/v/3`` → ``kaggle://o/m/f/v``."""
    if handle.startswith("hf://"):
        return handle.split("@", 1)[0]
    head, _, last = handle.rpartition("/")
    return head if last.isdigit() else handle


def record_published(name, handle, manifest_sha256, date):
    """Append one confirmed publication to the preset's entry (newest last) and rewrite the catalog
    atomically; returns whether a record was added.

    Nothing is added when the newest record for the same target already holds this manifest:
    re-publishing an unchanged preset (a hub answering "up to date") records nothing new. The
    date is the wall clock's: the catalog is a log of publications, not a preset.
    """
    data = _load()
    published = data["presets"][name]["published"]
    same_target = [p for p in published if _target(p["handle"]) == _target(handle)]
    if same_target and same_target[-1]["manifest_sha256"] == manifest_sha256:
        return False
    published.append({"handle": handle, "manifest_sha256": manifest_sha256, "date": date})
    _save(data)
    return True


def record_source_revision(name, revision):
    """Pin the preset's upstream to ``revision`` (a commit sha) in the catalog; returns whether it changed."""
    data = _load()
    source = data["presets"][name]["source"]
    if source.get("revision") == revision:
        return False
    source["revision"] = revision
    _save(data)
    return True


def _save(data):
    """Rewrite the catalog file atomically, in its own layout."""
    path = catalog_file()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
