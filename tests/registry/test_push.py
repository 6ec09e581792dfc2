"""`presetforge convert gpt2 --push`: upstream at the pinned revision to verified, published,
recorded presets, all through the real clients against the stand-in hub."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from presetforge import Backbone, IntegrityError
from presetforge.cli import main
from presetforge.registry import catalog, hub
from tests.backbones.tiny import inputs, outputs
from tests.checkpoints import make_gpt2


@pytest.fixture
def gpt2_catalog(standin_hub, tmp_path, monkeypatch):
    """A catalog copy whose gpt2 upstreams are tiny checkpoints served by the stand-in, pinned by commit."""
    data = json.loads(catalog.PACKAGED_CATALOG.read_text())
    for seed, name in enumerate(n for n, e in data["presets"].items() if e["family"] == "gpt2"):
        entry = data["presets"][name]
        upstream = make_gpt2(tmp_path / "upstream" / name, tokenizer=True, seed=seed)
        entry["source"]["revision"] = hub.upload_hf(upstream, entry["source"]["handle"][len("hf://"):], "upstream")
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


def test_catalog_pin_is_enforced_on_download(standin_hub, gpt2_catalog, tmp_path):
    result = CliRunner().invoke(main, ["convert", "gpt2_base_en", "--push", "--workdir", str(tmp_path / "work")])
    assert result.exit_code == 0, result.output
    data = json.loads(gpt2_catalog.read_text())
    for record in data["presets"]["gpt2_base_en"]["published"]:
        record["manifest_sha256"] = "0" * 64
    gpt2_catalog.write_text(json.dumps(data))
    with pytest.raises(IntegrityError, match="the catalog pins 0000"):
        Backbone.from_preset("gpt2_base_en")


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
    reports = json.loads(result.output)
    assert reports["gpt2_medium_en"] is None
    assert reports["gpt2_base_en"]["passed"] is True and len(reports["gpt2_base_en"]["stages"]) == 5
    table = CliRunner().invoke(main, ["check", "gpt2"])
    assert table.exit_code == 0 and "passed" in table.output and "unpublished" in table.output, table.output
