"""Read access to the built-in preset catalog, which is data (``catalog.json``), not code.

Kept low in the package map because ``Backbone.presets`` and handle resolution
both need it; the writers of the catalog (publishing) sit above.
"""

import functools
import json
from pathlib import Path

CATALOG_FILE = Path(__file__).with_name("catalog.json")


@functools.lru_cache(maxsize=1)
def _load():
    with open(CATALOG_FILE, encoding="utf-8") as f:
        return json.load(f)["presets"]


def entries():
    """Every built-in preset, by name (a fresh copy the caller may change)."""
    return json.loads(json.dumps(_load()))


def entry(name):
    """One preset's entry, or ``None`` when the catalog has no such name."""
    return entries().get(name)


def for_classes(class_names):
    """The entries whose backbone class is one of ``class_names``."""
    return {name: e for name, e in entries().items() if e["backbone_class"] in class_names}
