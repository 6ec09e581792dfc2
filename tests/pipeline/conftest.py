"""Two nights of the nightly job against the stand-in hub, run once for the pipeline tests.

Night 1 runs as the nightly workflow does: the plan turns `presetforge list --json` into a
matrix of published presets, one job per preset runs `check --all --family NAME` into its own
artifact, and the artifacts are merged into the night's report dir. Then one published preset is
doctored on its hub and another's upstream moves on, and night 2 is one `check --all` (the
acceptance run). The dashboard is built from both nights.
"""

import shutil
import types

import pytest

from tests.pipeline.scenario import invoke, move_upstream_head, plan, publish_trio, tamper_published
from tests.standin_hub.fixtures import serving


@pytest.fixture(scope="package")
def nights(tmp_path_factory):
    root = tmp_path_factory.mktemp("nightly")
    with pytest.MonkeyPatch.context() as monkeypatch, serving(root / "standin-clients", monkeypatch) as hub:
        catalog_file = publish_trio(root, monkeypatch)
        listing = invoke("list", "--json")
        matrix = plan(listing.stdout)
        jobs = {
            name: invoke("check", "--all", "--family", name, "--report-dir", root / "artifacts" / name, "--json")
            for name in matrix
        }
        for name in matrix:  # the final job downloads every job's artifact into one directory
            shutil.copytree(root / "artifacts" / name, root / "nights" / "1", dirs_exist_ok=True)
        tamper_published(hub, "bert_tiny_en_uncased", root / "tamper")
        head = move_upstream_head(hub, "llama2_7b_en")
        night2 = invoke("check", "--all", "--report-dir", root / "nights" / "2")
        site = invoke("dashboard", root / "nights" / "1", root / "nights" / "2", "-o", root / "site")
        yield types.SimpleNamespace(
            root=root, hub=hub, catalog=catalog_file, listing=listing, matrix=matrix, jobs=jobs,
            night1=root / "nights" / "1", night2=root / "nights" / "2", night2_run=night2,
            moved_head=head, site_run=site, site=root / "site",
        )
