"""`presetforge dashboard`: the nightly reports as a static site; what its pages hold, read as HTML."""

import html.parser
import json
import shutil

import pytest

from presetforge.pipeline import nightly
from tests.pipeline.scenario import PUBLISHED, TAMPERED_NAME, invoke


class _Rows(html.parser.HTMLParser):
    """The presets table of index.html: each row's attributes, its cells' text, its trend's dots."""

    def __init__(self):
        super().__init__()
        self.rows, self._cell, self._in_table, self._in_svg = [], None, False, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id") == "presets":
            self._in_table = True
        elif self._in_table and tag == "tr" and "data-preset" in attrs:
            self.rows.append({"attrs": attrs, "cells": {}, "dots": 0, "links": []})
        elif self._in_table and self.rows and tag == "td":
            self._cell = attrs["data-label"]
            self.rows[-1]["cells"][self._cell] = ""
        elif self._in_table and self.rows and tag == "svg":
            self._in_svg = True
        elif self._in_table and self.rows and tag == "circle":
            self.rows[-1]["dots"] += 1
        elif self._in_table and self.rows and tag == "a":
            self.rows[-1]["links"].append(attrs["href"])

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None
        elif tag == "table":
            self._in_table = False
        elif tag == "svg":
            self._in_svg = False

    def handle_data(self, data):
        if self._cell is not None and not self._in_svg:  # an SVG's tooltips are not the cell's text
            self.rows[-1]["cells"][self._cell] += data


def rows(site):
    parser = _Rows()
    parser.feed((site / "index.html").read_text(encoding="utf-8"))
    return parser.rows


def test_one_row_per_preset_failed_and_drifted_first_with_their_numbers(nights):
    assert nights.site_run.exit_code == 0, nights.site_run.output
    table = rows(nights.site)
    assert [(r["attrs"]["data-preset"], r["attrs"]["class"]) for r in table] == [
        ("bert_tiny_en_uncased", "status-fail"), ("llama2_7b_en", "status-drift"), ("gpt2_base_en", "status-pass"),
    ]
    bert, llama, gpt2 = table
    assert bert["cells"]["Status"].strip() == "\u2716 FAILED" and TAMPERED_NAME in bert["cells"]["Preset"]
    assert llama["cells"]["Status"].strip() == "\u26a0 DRIFT" and "has moved: its head is" in llama["cells"]["Preset"]
    assert gpt2["cells"]["Status"].strip() == "\u2714 passed"
    for row in table:
        name = row["attrs"]["data-preset"]
        record = json.loads((nights.night2 / name / nightly.RECORD_FILE).read_text())
        s = record["summary"]
        assert f"{s['worst_stage_max_abs']:.1e} / {s['worst_stage_limit']:.1e}" in row["cells"]["Worst stage / limit"]
        assert s["worst_stage"] in row["cells"]["Worst stage / limit"]
        assert row["cells"]["Tokenizer"] == "identical"
        versions = row["cells"]["Versions"]
        assert record["versions"]["manifest_sha256"][:12] in versions
        assert record["versions"]["upstream"].rpartition("@")[2][:12] in versions
        assert record["versions"]["transformers"] in versions and record["versions"]["keras"] in versions
        assert row["dots"] == 2  # two nights in the trend
        assert row["links"] == [f"presets/{name}.html"] and (nights.site / row["links"][0]).is_file()
    assert gpt2["cells"]["Logits top-1"] == f"{gpt2_summary(nights)['top1_agree']} / {gpt2_summary(nights)['top1_positions']}"
    assert bert["cells"]["Logits top-1"] == "no LM head"
    assert "1 failed, 0 not checked, 1 drifted, 1 passed" in (nights.site / "index.html").read_text()


def gpt2_summary(nights):
    return json.loads((nights.night2 / "gpt2_base_en" / nightly.RECORD_FILE).read_text())["summary"]


def test_each_preset_page_has_its_plot_report_and_history(nights):
    for name in PUBLISHED:
        page = (nights.site / "presets" / f"{name}.html").read_text(encoding="utf-8")
        plot = nights.site / "presets" / name / "parity.png"
        assert plot.read_bytes() == (nights.night2 / name / "parity.png").read_bytes()
        assert f'<img src="{name}/parity.png"' in page
        report = json.loads((nights.night2 / name / "parity.json").read_text())
        for stage in report["stages"]:
            assert f"<td>{stage['name']}</td><td>{stage['max_abs']:.3e}</td>" in page  # parity.md's table
        assert page.count('<span class="badge') == 3  # the verdict, then the two nights


def test_the_site_is_self_contained_and_has_a_summary_for_ci(nights):
    for page in nights.site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "<script" not in text and "http://" not in text.replace("http://www.w3.org", "")
        assert 'src="http' not in text and 'href="http' not in text and "<link" not in text
    summary = json.loads((nights.site / "summary.json").read_text())
    assert [r["status"] for r in summary["presets"]] == ["fail", "drift", "pass"] and summary["nights"] == 2
    markdown = (nights.site / "summary.md").read_text().splitlines()
    assert markdown[0] == "## presetforge nightly parity: 1 failed, 0 not checked, 1 drifted, 1 passed"
    assert markdown[4].startswith("| \u2716 FAILED | bert_tiny_en_uncased | ")


def test_the_trend_follows_the_records_dates_not_the_argument_order(nights, tmp_path):
    result = invoke("dashboard", nights.night2, nights.night1, "-o", tmp_path / "site")
    assert result.exit_code == 0, result.output
    first = (tmp_path / "site" / "index.html").read_text()
    assert first == (nights.site / "index.html").read_text()


def test_rebuilding_replaces_the_site_whole(nights, tmp_path):
    site = tmp_path / "site"
    assert invoke("dashboard", nights.night1, "-o", site).exit_code == 0
    assert [r["attrs"]["class"] for r in rows(site)] == ["status-pass"] * 3
    (site / "presets" / "stale.html").write_text("from an older build")
    result = invoke("dashboard", nights.night1, nights.night2, "-o", site)
    assert result.exit_code == 0, result.output
    assert not (site / "presets" / "stale.html").exists()
    assert rows(site)[0]["attrs"]["class"] == "status-fail"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]  # no staging left beside it


def test_one_preset_directory_is_a_report_dir_too(nights, tmp_path):
    result = invoke("dashboard", nights.night2 / "llama2_7b_en", "-o", tmp_path / "site")
    assert result.exit_code == 0, result.output
    assert [r["attrs"]["data-preset"] for r in rows(tmp_path / "site")] == ["llama2_7b_en"]


def test_a_preset_that_could_not_be_checked_shows_no_numbers_but_its_error(nights, tmp_path):
    reports = tmp_path / "reports"
    shutil.copytree(nights.night2, reports)
    record_file = reports / "gpt2_base_en" / nightly.RECORD_FILE
    record = json.loads(record_file.read_text())
    record.update(status="error", summary=None, problem="the Hugging Face hub answered HTTP 503")
    record_file.write_text(json.dumps(record))
    assert invoke("dashboard", nights.night1, reports, "-o", tmp_path / "site").exit_code == 0
    row = next(r for r in rows(tmp_path / "site") if r["attrs"]["data-preset"] == "gpt2_base_en")
    assert row["attrs"]["class"] == "status-error" and row["cells"]["Status"].strip() == "\u2716 ERROR"
    assert "answered HTTP 503" in row["cells"]["Preset"]
    assert row["cells"]["Worst stage / limit"] == "no numbers: not checked"
    index = (tmp_path / "site" / "index.html").read_text()
    assert index.count('fill="none" stroke="#c81e1e"') == 1  # tonight's dot hollow: no number, not a zero
    page = (tmp_path / "site" / "presets" / "gpt2_base_en.html").read_text()
    assert "\u2014 (not checked)" in page and "nan" not in page


@pytest.mark.parametrize(
    "case, message",
    [
        ("output-is-a-file", "is a file; give a directory for the site"),
        ("output-holds-other-files", "holds other files, not a dashboard; refusing to replace it"),
        ("missing-report-dir", "is not a directory"),
        ("empty-report-dir", "holds no nightly report"),
        ("malformed-record", "is not valid JSON"),
        ("record-without-status", "names no preset or status it can show"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(nights, tmp_path, case, message):
    reports, output = tmp_path / "reports", tmp_path / "site"
    shutil.copytree(nights.night2, reports)
    if case == "output-is-a-file":
        output.write_text("mine")
    elif case == "output-holds-other-files":
        output.mkdir()
        (output / "notes.txt").write_text("mine")
    elif case == "missing-report-dir":
        reports = tmp_path / "missing"
    elif case == "empty-report-dir":
        reports = tmp_path / "empty"
        reports.mkdir()
    elif case == "malformed-record":
        (reports / "gpt2_base_en" / nightly.RECORD_FILE).write_text("{not json")
    else:
        record = json.loads((reports / "gpt2_base_en" / nightly.RECORD_FILE).read_text())
        record["status"] = "great"
        (reports / "gpt2_base_en" / nightly.RECORD_FILE).write_text(json.dumps(record))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    result = invoke("dashboard", reports, "-o", output)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr and len(result.stderr.splitlines()) == 1
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())
