"""`presetforge convert gpt2 --push`: upstream at the pinned revision to verified, published,
recorded presets, all through the real clients against the stand-in hub."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from presetforge import Backbone, IntegrityError, preset
from presetforge.cli import main
from presetforge.pipeline import publish, push
from presetforge.registry import catalog, handles, hf, hub, local
from tests.backbones.tiny import inputs, outputs
from tests.checkpoints import make_gpt2


@pytest.fixture
def gpt2_catalog(standin_hub, tmp_path, monkeypatch):
    """A catalog copy whose gpt2 upstreams are tiny checkpoints served by the stand-in, pinned by commit."""
    data = json.loads(catalog.PACKAGED_CATALOG.read_text())
    for seed, name in enumerate(n for n, e in data["presets"].items() if e["family"] == "gpt2"):
        entry = data["presets"][name]
        upstream = make_gpt2(tmp_path / "upstream" / name, tokenizer=True, seed=seed)
        entry["source"]["revision"] = hf.upload(upstream, entry["source"]["handle"][len("hf://"):], "upstream")
        entry["targets"] = [f"hf://standin/{name}", f"kaggle://standin/gpt2/keras/{name}"]
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(data))
    monkeypatch.setenv("PRESETFORGE_CATALOG", str(path))
    return path


def test_convert_family_push_publishes_records_and_loads_by_name(standin_hub, gpt2_catalog, tmp_path):
    names = catalog.family("gpt2")
    assert names == ["gpt2_base_en", "gpt2_medium_en", "gpt2_large_en", "gpt2_extra_large_en"]
    commits_before = len(standin_hub.requests_to("commit", "POST"))
    plan = CliRunner().invoke(main, ["convert", "gpt2", "--push", "--dry-run", "--workdir", tmp_path / "work"])
    assert plan.exit_code == 0 and plan.output.count("planned") == 4
    assert len(standin_hub.requests_to("commit", "POST")) == commits_before and not (tmp_path / "work").exists()

    result = CliRunner().invoke(main, ["convert", "gpt2", "--push", "--workdir", str(tmp_path / "work")])
    assert result.exit_code == 0, result.output
    assert result.output.count("published") >= 4
    assert len(standin_hub.requests_to("commit", "POST")) == commits_before + 4

    for name in names:
        records = catalog.entry(name)["published"]
        commit = standin_hub.hf.head(f"standin/{name}")
        assert [r["handle"] for r in records] == [f"hf://standin/{name}@{commit}", f"kaggle://standin/gpt2/keras/{name}/1"]
        assert len({r["manifest_sha256"] for r in records}) == 1
        assert standin_hub.kaggle.versions("standin", "gpt2", "keras", name) == [1]

    loaded = Backbone.from_preset("gpt2_base_en")
    x = inputs("gpt2")
    for a, b in zip(outputs(loaded, x), outputs(Backbone.from_preset(tmp_path / "work" / "gpt2_base_en"), x)):
        np.testing.assert_array_equal(a, b)

    # Publishing those same presets again changes nothing anywhere.
    again = CliRunner().invoke(main, ["publish", str(tmp_path / "work" / "gpt2_base_en"), "--name", "gpt2_base_en",
                                      "--to", "hf://standin/gpt2_base_en", "--to", "kaggle://standin/gpt2/keras/gpt2_base_en"])
    assert again.exit_code == 0 and again.output.count("up to date") == 2, again.output
    assert standin_hub.kaggle.versions("standin", "gpt2", "keras", "gpt2_base_en") == [1]

    # The whole push again: the same upstream commits give byte-identical presets, so every
    # target is up to date, and nothing is committed, versioned or recorded anew.
    catalog_before = gpt2_catalog.read_bytes()
    commits = len(standin_hub.requests_to("commit", "POST"))
    identities = {name: preset.sha256_file(tmp_path / "work" / name / preset.MANIFEST_FILE) for name in names}
    second = CliRunner().invoke(main, ["convert", "gpt2", "--push", "--json", "--workdir", str(tmp_path / "work")])
    assert second.exit_code == 0, second.output
    assert {name: preset.sha256_file(tmp_path / "work" / name / preset.MANIFEST_FILE) for name in names} == identities
    statuses = {r["name"]: [o["status"] for o in r["outcomes"]] for r in json.loads(second.stdout)}
    assert statuses == {name: ["up to date", "up to date"] for name in names}
    assert len(standin_hub.requests_to("commit", "POST")) == commits
    assert all(standin_hub.kaggle.versions("standin", "gpt2", "keras", name) == [1] for name in names)
    assert gpt2_catalog.read_bytes() == catalog_before


def _verified_gpt2(tmp_path, seed):
    """A verified tiny GPT-2 preset (converted and checked) that is not the catalog's."""
    source = make_gpt2(tmp_path / f"other-hf-{seed}", tokenizer=True, seed=seed)
    result = CliRunner().invoke(main, ["convert", str(source), "-o", str(tmp_path / f"other-{seed}")])
    assert result.exit_code == 0, result.output
    return tmp_path / f"other-{seed}"


def _assert_same_outputs(a, b):
    x = inputs("gpt2")
    for left, right in zip(outputs(a, x), outputs(b, x)):
        np.testing.assert_array_equal(left, right)


def test_catalog_pin_is_enforced_on_download(standin_hub, gpt2_catalog, tmp_path, monkeypatch):
    registry = tmp_path / "registry"
    monkeypatch.setenv("PRESETFORGE_REGISTRY", str(registry))
    result = CliRunner().invoke(main, ["convert", "gpt2_base_en", "--push", "--workdir", str(tmp_path / "work")])
    assert result.exit_code == 0, result.output
    # Another verified GPT-2 published into the local registry under the catalog's own coordinates.
    other = _verified_gpt2(tmp_path, seed=9)
    (outcome,) = publish.publish(other, [str(registry)], name="gpt2_base_en")
    assert outcome.status == "published" and outcome.handle.startswith(str(registry))

    # The name still means the pinned publication, downloaded: not the newer local copy.
    assert not handles.resolve("gpt2_base_en").is_relative_to(registry)
    _assert_same_outputs(Backbone.from_preset("gpt2_base_en"), Backbone.from_preset(tmp_path / "work" / "gpt2_base_en"))

    # A pin that no copy matches: every download is refused, and the local copy is still not loaded.
    data = json.loads(gpt2_catalog.read_text())
    for record in data["presets"]["gpt2_base_en"]["published"]:
        record["manifest_sha256"] = "0" * 64
    gpt2_catalog.write_text(json.dumps(data))
    with pytest.raises(IntegrityError, match="the catalog pins 0000"):
        Backbone.from_preset("gpt2_base_en")


def test_the_newest_publication_is_the_pin_and_a_local_copy_of_it_is_used(standin_hub, gpt2_catalog, tmp_path, monkeypatch):
    registry = tmp_path / "registry"
    monkeypatch.setenv("PRESETFORGE_REGISTRY", str(registry))
    result = CliRunner().invoke(main, ["convert", "gpt2_base_en", "--push", "--workdir", str(tmp_path / "work")])
    assert result.exit_code == 0, result.output
    first = tmp_path / "work" / "gpt2_base_en"
    second = _verified_gpt2(tmp_path, seed=9)
    targets = ["hf://standin/gpt2_base_en", "kaggle://standin/gpt2/keras/gpt2_base_en"]
    outcomes = publish.publish(second, targets, name="gpt2_base_en", record=True)
    assert [o.status for o in outcomes] == ["published", "published"]
    identities = [preset.sha256_file(p / preset.MANIFEST_FILE) for p in (first, second)]
    records = catalog.entry("gpt2_base_en")["published"]
    assert [r["manifest_sha256"] for r in records] == [identities[0]] * 2 + [identities[1]] * 2
    _assert_same_outputs(Backbone.from_preset("gpt2_base_en"), Backbone.from_preset(second))

    # The local registry holds the pin as its older version: that copy loads, with no download.
    publish.publish(second, [str(registry)], name="gpt2_base_en")
    publish.publish(first, [str(registry)], name="gpt2_base_en")
    coords = handles.coordinates("gpt2_base_en")
    assert local.versions(registry, *coords) == [1, 2]

    def no_download(handle):
        raise AssertionError(f"downloaded {handle}")

    monkeypatch.setattr(hub, "download", no_download)
    assert handles.resolve("gpt2_base_en") == registry.joinpath(*coords, "1")
    _assert_same_outputs(Backbone.from_preset("gpt2_base_en"), Backbone.from_preset(second))


def test_push_resolves_a_branch_to_its_commit_and_pins_it(standin_hub, gpt2_catalog, tmp_path, monkeypatch):
    data = json.loads(gpt2_catalog.read_text())
    source = data["presets"]["gpt2_base_en"]["source"]
    commit = source["revision"]  # the fixture's upload, where main points
    source["revision"] = "main"
    gpt2_catalog.write_text(json.dumps(data))
    downloads = []
    download = hub.download
    monkeypatch.setattr(hub, "download", lambda handle: downloads.append(handle) or download(handle))

    result = CliRunner().invoke(main, ["convert", "gpt2_base_en", "--push", "--workdir", str(tmp_path / "work")])
    assert result.exit_code == 0, result.output
    assert downloads == [handles.HFHandle("openai-community/gpt2", commit)]
    assert preset.read_json(tmp_path / "work" / "gpt2_base_en", preset.METADATA_FILE)["source"]["revision"] == commit
    assert catalog.entry("gpt2_base_en")["source"]["revision"] == commit


@pytest.mark.parametrize("revision", ["main", None, "pinned"])
def test_an_unpinned_upstream_revision_is_asked_of_the_hub(standin_hub, gpt2_catalog, revision):
    data = json.loads(gpt2_catalog.read_text())
    source = data["presets"]["gpt2_medium_en"]["source"]
    commit = source["revision"]
    if revision is None:
        del source["revision"]
    elif revision == "main":
        source["revision"] = "main"
    gpt2_catalog.write_text(json.dumps(data))
    infos = len(standin_hub.requests_to("/api/models/openai-community/gpt2-medium"))
    assert push.pinned_upstream("gpt2_medium_en") == handles.HFHandle("openai-community/gpt2-medium", commit)
    asked = len(standin_hub.requests_to("/api/models/openai-community/gpt2-medium")) - infos
    assert asked == (0 if revision == "pinned" else 1)
    assert catalog.entry("gpt2_medium_en")["source"].get("revision") == (commit if revision == "pinned" else revision)


def test_push_without_credentials_stops_before_any_work(standin_hub, gpt2_catalog, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    log_before = len(standin_hub.log)
    result = CliRunner().invoke(main, ["convert", "gpt2", "--push", "--workdir", str(tmp_path / "work")])
    assert result.exit_code == 2
    assert "no Hugging Face token" in result.output and "Traceback" not in result.output
    assert len(standin_hub.log) == log_before and not (tmp_path / "work").exists()


def test_nightly_check_of_published_presets(standin_hub, gpt2_catalog, tmp_path):
    pushed = CliRunner().invoke(main, ["convert", "gpt2_base_en", "--push", "--workdir", str(tmp_path / "work")])
    assert pushed.exit_code == 0, pushed.output
    result = CliRunner().invoke(main, ["check", "gpt2", "--json"])
    assert result.exit_code == 0, result.output
    reports = json.loads(result.stdout)  # the JSON alone: download progress goes to stderr
    assert reports["gpt2_medium_en"] is None
    assert reports["gpt2_base_en"]["passed"] is True and len(reports["gpt2_base_en"]["stages"]) == 5
    table = CliRunner().invoke(main, ["check", "gpt2"])
    assert table.exit_code == 0 and "passed" in table.output and "unpublished" in table.output, table.output
