"""Catalog pins without a hub: how publication records are kept, and what a catalog name may load
from the local registry."""

import json

import pytest

from presetforge import Backbone, HandleError, HubError, preset
from presetforge.registry import catalog, handles, hub, local
from tests.backbones.tiny import make

A, B = "a" * 64, "b" * 64
HF, KAGGLE = "hf://presetforge/gpt2_base_en", "kaggle://presetforge/gpt2/keras/gpt2_base_en"


@pytest.fixture
def catalog_copy(tmp_path, monkeypatch):
    """A writable copy of the packaged catalog, in force for the test; returns its path."""
    path = tmp_path / "catalog.json"
    path.write_bytes(catalog.PACKAGED_CATALOG.read_bytes())
    monkeypatch.setenv("PRESETFORGE_CATALOG", str(path))
    return path


@pytest.fixture
def registry(tmp_path, monkeypatch):
    monkeypatch.setenv("PRESETFORGE_REGISTRY", str(tmp_path / "registry"))
    return tmp_path / "registry"


def _edit_entry(path, name, **changes):
    data = json.loads(path.read_text())
    data["presets"][name].update(changes)
    path.write_text(json.dumps(data))


def test_records_are_appended_newest_last_and_an_unchanged_publication_adds_none(catalog_copy):
    def record(handle, manifest):
        return catalog.record_published("gpt2_base_en", handle, manifest, "2026-01-01T00:00:00+00:00")

    assert catalog.pin("gpt2_base_en") is None
    assert record(f"{HF}@c1", A) and record(f"{KAGGLE}/1", A)
    unchanged = catalog_copy.read_bytes()
    assert not record(f"{HF}@c1", A)  # a hub answering "up to date"
    assert not record(f"{HF}@c2", A)  # the repo moved on (a README commit), the preset did not
    assert not record(f"{KAGGLE}/1", A)
    assert catalog_copy.read_bytes() == unchanged
    assert catalog.pin("gpt2_base_en") == A

    assert record(f"{HF}@c3", B) and record(f"{KAGGLE}/2", B)
    assert catalog.pin("gpt2_base_en") == B
    assert record(f"{HF}@c4", A)  # a rollback is a new publication, and the newest
    assert catalog.pin("gpt2_base_en") == A
    assert [r["handle"] for r in catalog.publications("gpt2_base_en", A)] == [f"{HF}@c4", f"{KAGGLE}/1", f"{HF}@c1"]
    assert [r["handle"] for r in catalog.entry("gpt2_base_en")["published"]] == [
        f"{HF}@c1", f"{KAGGLE}/1", f"{HF}@c3", f"{KAGGLE}/2", f"{HF}@c4"
    ]


def test_recording_the_source_revision(catalog_copy):
    assert catalog.entry("gpt2_base_en")["source"]["revision"] == "main"
    assert catalog.record_source_revision("gpt2_base_en", "f" * 40)
    unchanged = catalog_copy.read_bytes()
    assert not catalog.record_source_revision("gpt2_base_en", "f" * 40)
    assert catalog_copy.read_bytes() == unchanged
    assert catalog.entry("gpt2_base_en")["source"] == {"handle": "hf://openai-community/gpt2", "revision": "f" * 40}


def _publish_tiny(tmp_path, registry, name):
    """A tiny GPT-2 published into the local registry at the catalog coordinates of ``name``."""
    backbone = make("gpt2")
    backbone.save_to_preset(tmp_path / "tiny")
    _, path, _ = local.publish(tmp_path / "tiny", registry, *handles.coordinates(name))
    return backbone, path


def test_a_local_copy_of_another_size_never_passes_for_an_unpublished_catalog_preset(tmp_path, catalog_copy, registry):
    _, path = _publish_tiny(tmp_path, registry, "gpt2_base_en")
    with pytest.raises(HandleError) as info:
        Backbone.from_preset("gpt2_base_en")
    assert str(info.value) == (
        f"the local registry's {path} holds a GPT2Backbone of 6016 parameters, not the catalog's gpt2_base_en "
        "(a GPT2Backbone of 124439808 parameters); refusing to load it by that name"
    )


def test_an_unpublished_catalog_preset_loads_what_was_published_locally(tmp_path, catalog_copy, registry):
    """The offline demo's case: published into the local registry only, loaded by its name."""
    backbone, path = _publish_tiny(tmp_path, registry, "gpt2_base_en")
    _edit_entry(catalog_copy, "gpt2_base_en", parameter_count=backbone.count_params())
    assert handles.resolve("gpt2_base_en") == path == registry / "presetforge" / "gpt2" / "gpt2_base_en" / "1"
    assert Backbone.from_preset("gpt2_base_en").count_params() == backbone.count_params()


def test_once_pinned_only_the_pin_loads(tmp_path, catalog_copy, registry, monkeypatch):
    backbone, path = _publish_tiny(tmp_path, registry, "gpt2_base_en")
    _edit_entry(catalog_copy, "gpt2_base_en", parameter_count=backbone.count_params())
    identity = preset.sha256_file(path / preset.MANIFEST_FILE)
    downloads = []

    def unreachable(handle):
        downloads.append(handle)
        raise HubError("the hub cannot be reached")

    monkeypatch.setattr(hub, "download", unreachable)
    catalog.record_published("gpt2_base_en", f"{KAGGLE}/1", "0" * 64, "2026-01-01T00:00:00+00:00")
    with pytest.raises(HubError, match="cannot be reached"):
        Backbone.from_preset("gpt2_base_en")  # the local copy is not the pin
    assert downloads == [handles.KaggleHandle("presetforge", "gpt2", "keras", "gpt2_base_en", 1)]
    catalog.record_published("gpt2_base_en", f"{KAGGLE}/2", identity, "2026-01-02T00:00:00+00:00")
    assert handles.resolve("gpt2_base_en") == path and len(downloads) == 1
