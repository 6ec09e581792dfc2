"""The built-in preset catalog, which is data (``catalog.json``), not code.

Kept low in the package map because ``Backbone.presets`` and handle resolution
both need to read it; publishing records what the hubs confirmed through
``record_published``. ``PRESETFORGE_CATALOG`` points at another catalog file
(tests, or a maintainer's working copy).
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


def record_published(name, handle, manifest_sha256, date):
    """Add one confirmed publication to the preset's entry and rewrite the catalog atomically."""
    data = _load()
    published = data["presets"][name]["published"]
    record = {"handle": handle, "manifest_sha256": manifest_sha256, "date": date}
    if record["handle"] not in {p["handle"] for p in published}:
        published.append(record)
    path = catalog_file()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
