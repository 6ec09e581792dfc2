"""`presetforge check --all`: every published preset fetched, proven against its pin, checked against
its pinned upstream, one report each; failures named, drift noticed, exit 1 on any regression."""

import json
import shutil

import pytest

from presetforge import preset
from presetforge.pipeline import nightly
from presetforge.registry import catalog
from tests.pipeline.scenario import PUBLISHED, TAMPERED_NAME, UNPUBLISHED, invoke

REPORT_FILES = {"nightly.json", "parity.json", "parity.md", "parity.png"}


def _records(night):
    return {name: json.loads((night / name / nightly.RECORD_FILE).read_text()) for name in PUBLISHED}


def test_check_all_names_the_tampered_weight_and_notices_the_moved_upstream(nights):
    run = nights.night2_run
    assert run.exit_code == 1, run.output
    failures = [line for line in run.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    assert failures == [
        f"FAILED bert_tiny_en_uncased: weights: '{TAMPERED_NAME}' differs at index (0, 0): "
        + failures[0].split("index (0, 0): ", 1)[1]
    ]
    drift = [line for line in run.stdout.splitlines() if line.startswith("DRIFT")]
    pinned = catalog.entry("llama2_7b_en")["source"]["revision"]
    assert drift == [
        f"DRIFT llama2_7b_en: upstream meta-llama/Llama-2-7b-hf has moved: its head is {nights.moved_head[:12]}, "
        f"the catalog pins {pinned[:12]}"
    ]
    assert "3 checked: 1 failed, 0 could not be checked, 1 drifted, 1 passed" in run.stdout
    assert "[3/3] llama2_7b_en: checking weights, stages, logits and tokenizer" in run.stderr  # progress on stderr
    assert "Traceback" not in run.output

    records = _records(nights.night2)
    assert {n: r["status"] for n, r in records.items()} == {
        "gpt2_base_en": "pass", "bert_tiny_en_uncased": "fail", "llama2_7b_en": "drift",
    }
    for name, record in records.items():
        assert {p.name for p in (nights.night2 / name).iterdir()} == REPORT_FILES
        report = json.loads((nights.night2 / name / "parity.json").read_text())
        assert report["passed"] is (name != "bert_tiny_en_uncased")
        versions = record["versions"]
        source = catalog.entry(name)["source"]
        assert versions["upstream"] == f"{source['handle'][len('hf://'):]}@{source['revision']}"
        assert versions["manifest_sha256"] == catalog.pin(name)
        assert versions["transformers"] == report["reference"]["transformers_version"]
    assert records["llama2_7b_en"]["versions"]["upstream_head"] == nights.moved_head
    bert = records["bert_tiny_en_uncased"]
    assert bert["summary"]["weights"] == "MISMATCH" and bert["problem"].startswith(f"weights: '{TAMPERED_NAME}'")
    assert not any((nights.night2 / name).name.startswith(".") for name in PUBLISHED)
    assert [p.name for p in nights.night2.iterdir() if p.name.startswith(".")] == []  # no staging left


def test_nightly_sequence_plan_per_preset_check_and_merge(nights):
    assert nights.listing.exit_code == 0
    assert nights.matrix == list(PUBLISHED)  # the unpublished catalog preset is not planned
    assert UNPUBLISHED in json.loads(nights.listing.stdout)
    for name, job in nights.jobs.items():
        assert job.exit_code == 0, job.output
        summary = json.loads(job.stdout)  # the JSON alone on stdout
        assert summary["passed"] is True and summary["counts"] == {"fail": 0, "error": 0, "drift": 0, "pass": 1}
        (record,) = summary["presets"]
        assert record["preset"] == name and record["status"] == "pass" and record["drift"] == []
        assert record == json.loads((nights.night1 / name / nightly.RECORD_FILE).read_text())
    assert {p.name for p in nights.night1.iterdir()} == set(PUBLISHED)


def test_a_job_for_an_unpublished_preset_checks_nothing_and_passes(nights):
    result = invoke("check", "--all", "--family", UNPUBLISHED, "--report-dir", nights.root / "unpublished")
    assert result.exit_code == 0, result.output
    assert "no published preset to check in gpt2_medium_en" in result.stdout
    assert not (nights.root / "unpublished").exists()


def _doctored_previous(nights, tmp_path, transformers_version, shift):
    """Night 1's gpt2 report, as if made by ``transformers_version`` with the 'final' stage's error
    moved by ``shift`` times its limit."""
    previous = tmp_path / "previous"
    shutil.copytree(nights.night1 / "gpt2_base_en", previous / "gpt2_base_en")
    record = json.loads((previous / "gpt2_base_en" / nightly.RECORD_FILE).read_text())
    record["versions"]["transformers"] = transformers_version
    preset.write_json(previous / "gpt2_base_en" / nightly.RECORD_FILE, record)
    report = json.loads((previous / "gpt2_base_en" / "parity.json").read_text())
    final = next(s for s in report["stages"] if s["name"] == "final")
    final["max_abs"] += shift * final["limit"]
    preset.write_json(previous / "gpt2_base_en" / "parity.json", report)
    return previous


@pytest.mark.parametrize(
    "version, shift, drifted",
    [("4.57.0", 1.5, True), ("same", 1.5, False), ("4.57.0", 0.5, False)],
    ids=["new-transformers-moved-reference", "same-transformers", "within-tolerance"],
)
def test_drift_when_a_new_transformers_moves_the_reference_numbers(nights, tmp_path, version, shift, drifted):
    installed = json.loads((nights.night1 / "gpt2_base_en" / nightly.RECORD_FILE).read_text())["versions"]["transformers"]
    previous = _doctored_previous(nights, tmp_path, installed if version == "same" else version, shift)
    result = invoke("check", "--all", "--family", "gpt2_base_en", "--previous", previous,
                    "--report-dir", tmp_path / "tonight", "--json")
    assert result.exit_code == 0, result.output  # drift is a notice, not a failure
    (record,) = json.loads(result.stdout)["presets"]
    if drifted:
        assert record["status"] == "drift"
        assert record["drift"] == [
            f"transformers 4.57.0 -> {installed} moved the reference beyond tolerance: stage 'final' error "
            + record["drift"][0].split("stage 'final' error ", 1)[1]
        ]
    else:
        assert record["status"] == "pass" and record["drift"] == []


def test_the_report_dir_history_is_the_previous_night(nights, tmp_path):
    """Without --previous, what --report-dir holds from its last run is last night: read before it is replaced."""
    installed = json.loads((nights.night1 / "gpt2_base_en" / nightly.RECORD_FILE).read_text())["versions"]["transformers"]
    report_dir = _doctored_previous(nights, tmp_path, "4.57.0", 1.5)
    stale = report_dir / "gpt2_base_en" / "stale.txt"
    stale.write_text("from an older run")
    result = invoke("check", "--all", "--family", "gpt2", "--report-dir", report_dir, "--json")
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.stdout)["presets"]
    assert record["status"] == "drift" and record["drift"][0].startswith(f"transformers 4.57.0 -> {installed}")
    assert {p.name for p in (report_dir / "gpt2_base_en").iterdir()} == REPORT_FILES  # replaced whole
    assert record == json.loads((report_dir / "gpt2_base_en" / nightly.RECORD_FILE).read_text())


def test_a_publication_that_is_not_the_pin_fails_and_others_go_on(nights, tmp_path, monkeypatch):
    data = json.loads(nights.catalog.read_text())
    data["presets"]["gpt2_base_en"]["published"][-1]["manifest_sha256"] = "0" * 64
    doctored = tmp_path / "catalog.json"
    doctored.write_text(json.dumps(data))
    monkeypatch.setenv("PRESETFORGE_CATALOG", str(doctored))
    result = invoke("check", "--all", "--family", "gpt2", "--report-dir", tmp_path / "r")
    assert result.exit_code == 1, result.output
    assert "FAILED gpt2_base_en: integrity check failed for 'manifest.json'" in result.stdout
    assert "the catalog pins 0000" in result.stdout and "Traceback" not in result.output
    record = json.loads((tmp_path / "r" / "gpt2_base_en" / nightly.RECORD_FILE).read_text())
    assert record["status"] == "fail" and record["summary"] is None
    assert {p.name for p in (tmp_path / "r" / "gpt2_base_en").iterdir()} == {"nightly.json"}


def test_a_hub_that_fails_to_answer_is_an_error_not_a_pass(nights, tmp_path):
    nights.hub.faults.fail("hf.info", status=404)  # the first question asked of the hub
    try:
        result = invoke("check", "--all", "--family", "llama2_7b_en", "--report-dir", tmp_path / "r", "--json")
    finally:
        nights.hub.faults.clear()
    assert result.exit_code == 1, result.output
    (record,) = json.loads(result.stdout)["presets"]
    assert record["status"] == "error" and "answered HTTP 404" in record["problem"]


@pytest.mark.parametrize(
    "args, message",
    [
        (("--all", "gpt2_base_en"), "check --all takes no PRESET and no --reference"),
        (("--all", "--family", "nosuch"), "'nosuch' is neither a catalog preset nor a family"),
        (("--family", "gpt2"), "--family, --report-dir and --previous go with --all"),
        (("--all", "--report-dir", "{file}"), "is a file, not a directory"),
        (("--all", "--previous", "{missing}"), "is not a directory"),
        ((), "give a PRESET to check, or --all"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    (tmp_path / "file").write_text("not a directory")
    args = [a.format(file=tmp_path / "file", missing=tmp_path / "missing") for a in args]
    result = invoke("check", *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr and len(result.stderr.splitlines()) == 1
    assert (tmp_path / "file").read_text() == "not a directory"


def test_nothing_published_is_nothing_to_check(tmp_path, monkeypatch):
    monkeypatch.setenv("PRESETFORGE_CATALOG", str(catalog.PACKAGED_CATALOG))
    result = invoke("check", "--all", "--report-dir", tmp_path / "r")
    assert result.exit_code == 0 and "no published preset to check: the catalog pins none" in result.stdout
