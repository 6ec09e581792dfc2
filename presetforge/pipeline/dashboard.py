"""``presetforge dashboard``: the nightly reports as a static site that people read at a glance.

Input: report dirs of one or more nights as ``check --all`` writes them (a directory per preset
holding ``nightly.json`` and the report; a preset's own directory works too). Each preset's
records are ordered by their date; its newest is its row. Output: ``index.html`` (one row per
preset, failed and drifted ones first and loud: colour, icon and word), ``presets/<name>.html``
(the per-layer plot, the report, the history), ``summary.md`` (for a CI job summary) and
``summary.json``. Plain HTML with inline CSS and SVG: no script, nothing fetched; on a phone the
table becomes cards. The site is built beside the output and swapped in whole.
"""

import datetime
import html
import importlib.resources
import math
import re
import shutil
from pathlib import Path

from presetforge import preset
from presetforge.checks import report as report_lib
from presetforge.errors import PresetforgeError
from presetforge.pipeline import nightly, staged

SUMMARY_FILE = "summary.json"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # a preset's name, safe as a file name
_LABELS = {"fail": ("\u2716", "FAILED"), "error": ("\u2716", "ERROR"), "drift": ("\u26a0", "DRIFT"), "pass": ("\u2714", "passed")}
_RANK = {status: rank for rank, status in enumerate(nightly.STATUSES)}
_COLOURS = {"fail": "#c81e1e", "error": "#c81e1e", "drift": "#d69e2e", "pass": "#2da44e"}
# The ratio scale of the bars and trends: error / limit from 1e-4 to 1e2, log; the limit (1) at two thirds.
_LOG_LOW, _LOG_HIGH = -4.0, 2.0


class DashboardError(PresetforgeError):
    """The report dirs or the output directory cannot be used."""


def build(report_dirs, site_dir):
    """Write the site for ``report_dirs`` into ``site_dir`` (replaced whole); the presets' newest
    records, in the order the page lists them."""
    site_dir = Path(site_dir)
    _check_output(site_dir)
    histories = load(report_dirs)
    rows = sorted(histories, key=lambda name: (_RANK[histories[name][-1][0]["status"]], name))
    with staged.directory(site_dir) as stage:
        (stage / "presets").mkdir()
        (stage / "index.html").write_text(_index(rows, histories), encoding="utf-8")
        for name in rows:
            record, source = histories[name][-1]
            plot = source / report_lib.PLOT_FILE
            if plot.is_file():
                (stage / "presets" / name).mkdir()
                shutil.copyfile(plot, stage / "presets" / name / report_lib.PLOT_FILE)
            (stage / "presets" / f"{name}.html").write_text(_preset_page(name, histories[name]), encoding="utf-8")
        (stage / "summary.md").write_text(_summary_markdown(rows, histories), encoding="utf-8")
        latest = [histories[name][-1][0] for name in rows]
        preset.write_json(stage / SUMMARY_FILE, {"presets": latest, "nights": len(report_dirs)})
    return latest


def _check_output(site_dir):
    if site_dir.exists() and not site_dir.is_dir():
        raise DashboardError(f"the output '{site_dir}' is a file; give a directory for the site")
    if site_dir.is_dir() and any(site_dir.iterdir()) and not (site_dir / SUMMARY_FILE).is_file():
        raise DashboardError(f"'{site_dir}' holds other files, not a dashboard; refusing to replace it")


def load(report_dirs):
    """``{preset: [(record, its directory), ...]}``, each list ordered by the records' dates."""
    if not report_dirs:
        raise DashboardError("give at least one report dir")
    histories = {}
    for report_dir in map(Path, report_dirs):
        if not report_dir.is_dir():
            raise DashboardError(f"the report dir '{report_dir}' is not a directory")
        found = [report_dir] if (report_dir / nightly.RECORD_FILE).is_file() else sorted(
            d for d in report_dir.iterdir() if (d / nightly.RECORD_FILE).is_file()
        )
        if not found:
            raise DashboardError(f"'{report_dir}' holds no nightly report (no <preset>/{nightly.RECORD_FILE})")
        for directory in found:
            record = nightly.read_record(directory)
            name = record.get("preset")
            if not isinstance(name, str) or not _NAME.match(name) or record.get("status") not in _RANK:
                raise DashboardError(f"{directory / nightly.RECORD_FILE} names no preset or status it can show")
            histories.setdefault(name, []).append((record, directory))
    for history in histories.values():
        history.sort(key=lambda item: _date(item[0]))
    return histories


def _date(record):
    try:
        date = datetime.datetime.fromisoformat(record["date"])
    except (KeyError, TypeError, ValueError):
        raise DashboardError(f"the nightly record of {record.get('preset')} has no valid date") from None
    return date if date.tzinfo else date.replace(tzinfo=datetime.timezone.utc)


# --- pages ----------------------------------------------------------------------------------------


def _page(title, body):
    css = importlib.resources.files("presetforge.pipeline").joinpath("dashboard.css").read_text(encoding="utf-8")
    return (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{_e(title)}</title>\n<style>\n{css}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _e(text):
    return html.escape(str(text), quote=True)


def _badge(status):
    icon, word = _LABELS[status]
    return f'<span class="badge {status}" role="img" aria-label="{word}">{icon} {word}</span>'


def _counts(rows, histories):
    return {s: sum(histories[n][-1][0]["status"] == s for n in rows) for s in nightly.STATUSES}


def _banner(counts):
    bad = counts["fail"] + counts["error"]
    words = f"{counts['fail']} failed, {counts['error']} not checked, {counts['drift']} drifted, {counts['pass']} passed"
    kind = "bad" if bad else "warn" if counts["drift"] else "good"
    icon = "\u2716" if bad else "\u26a0" if counts["drift"] else "\u2714"
    return f'<div class="banner {kind}" id="verdict">{icon} {words}</div>'


def _index(rows, histories):
    newest = max(_date(histories[n][-1][0]) for n in rows)
    head = "".join(f"<th>{h}</th>" for h in ("Status", "Preset", "Worst stage / limit", "Logits top-1",
                                              "Tokenizer", "Versions", "Trend"))
    body = "\n".join(_row(name, histories[name]) for name in rows)
    return _page("presetforge nightly parity", (
        "<h1>presetforge nightly parity</h1>\n"
        f'<div class="muted">newest check {_e(newest.isoformat())}; each published preset against its '
        "pinned upstream in transformers (float32, eager)</div>\n"
        f"{_banner(_counts(rows, histories))}\n"
        f'<table class="presets" id="presets">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>'
    ))


def _row(name, history):
    record = history[-1][0]
    status, s, v = record["status"], record.get("summary") or {}, record.get("versions") or {}
    notes = ""
    if record.get("problem"):
        notes += f'<div class="problem">{_e(record["problem"])}</div>'
    notes += "".join(f'<div class="notice">{_e(n)}</div>' for n in record.get("drift") or [])
    cells = [
        ("Status", _badge(status)),
        ("Preset", f'<a href="presets/{_e(name)}.html"><strong>{_e(name)}</strong></a>{notes}'),
        ("Worst stage / limit", _ratio_cell(s)),
        ("Logits top-1", _top1(s)),
        ("Tokenizer", _e(s.get("tokenizer", "\u2014"))),
        ("Versions", _versions_cell(v)),
        ("Trend", _trend_svg(history)),
    ]
    tds = "".join(f'<td data-label="{label}">{content}</td>' for label, content in cells)
    return f'<tr class="status-{status}" data-preset="{_e(name)}" data-status="{status}">{tds}</tr>'


def _ratio_cell(s):
    if "worst_ratio" not in s:
        return '<span class="muted">no numbers: not checked</span>'
    text = (f"{s['worst_stage_max_abs']:.1e} / {s['worst_stage_limit']:.1e} "
            f"({s['worst_ratio']:.2g}\u00d7) at <code>{_e(s['worst_stage'])}</code>")
    return f"{_ratio_bar(s['worst_ratio'])}<div class=\"muted\">{text}</div>"


def _scale(ratio):
    """Where ``ratio`` sits between 0 and 1 on the log scale (0 for a zero error)."""
    if ratio <= 0:
        return 0.0
    return min(1.0, max(0.0, (math.log10(ratio) - _LOG_LOW) / (_LOG_HIGH - _LOG_LOW)))


def _ratio_bar(ratio, width=140, height=14):
    over = ratio > 1
    fill = "#c81e1e" if over else "#2da44e"
    limit_x = _scale(1.0) * width
    return (
        f'<svg class="ratio" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="worst error {ratio:.2g} times its limit">'
        f'<rect width="{width}" height="{height}" rx="3" fill="#eaeef2"/>'
        f'<rect width="{_scale(ratio) * width:.1f}" height="{height}" rx="3" fill="{fill}"/>'
        f'<line x1="{limit_x:.1f}" x2="{limit_x:.1f}" y1="0" y2="{height}" stroke="#1b1f24" stroke-width="2"/>'
        "</svg>"
    )


def _ratio_text(ratio):
    return "\u2014 (not checked)" if ratio is None else f"{ratio:.2g}\u00d7"


def _top1(s):
    if s.get("top1_positions") is None:
        return '<span class="muted">no LM head</span>' if s else "\u2014"
    return f"{s['top1_agree']} / {s['top1_positions']}"


def _versions_cell(v):
    lines = [
        ("preset", (v.get("manifest_sha256") or "")[:12] or "\u2014", v.get("preset")),
        ("upstream", (v.get("upstream") or "").rpartition("@")[2][:12] or "\u2014", v.get("upstream")),
        ("transformers", v.get("transformers") or "\u2014", None),
        ("keras", v.get("keras") or "\u2014", None),
    ]
    cells = []
    for label, value, full in lines:
        title = f' title="{_e(full)}"' if full else ""
        cells.append(f"<div>{label} <code{title}>{_e(value)}</code></div>")
    return f'<div class="versions">{"".join(cells)}</div>'


def _trend_svg(history, width=150, height=40):
    """Worst error / limit over the nights, log scale, the limit dashed: one dot per night, red when failed."""
    pad = 4
    points = []
    for index, (record, _) in enumerate(history):
        x = pad + (width - 2 * pad) * (index / (len(history) - 1) if len(history) > 1 else 0.5)
        ratio = (record.get("summary") or {}).get("worst_ratio")
        y = None if ratio is None else pad + (height - 2 * pad) * (1 - _scale(ratio))
        points.append((x, y, record, ratio))
    limit_y = pad + (height - 2 * pad) * (1 - _scale(1.0))
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points if y is not None)
    dots = []
    for x, y, record, ratio in points:
        colour = _COLOURS[record["status"]]
        # A night without numbers: a hollow dot on the floor, not a zero error.
        paint = f'fill="{colour}"' if y is not None else f'fill="none" stroke="{colour}" stroke-width="1.5"'
        numbers = "not checked" if ratio is None else f"worst error {ratio:.2g}\u00d7 its limit"
        tip = f"{record['date']}: {record['status']}, {numbers}"
        dots.append(f'<circle cx="{x:.1f}" cy="{y if y is not None else height - pad:.1f}" r="3" {paint}>'
                    f"<title>{_e(tip)}</title></circle>")
    return (
        f'<svg class="trend" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="worst error against its limit over {len(history)} nights">'
        f'<line x1="0" x2="{width}" y1="{limit_y:.1f}" y2="{limit_y:.1f}" stroke="#c81e1e" stroke-dasharray="4 3"/>'
        + (f'<polyline points="{line}" fill="none" stroke="#57606a" stroke-width="1.5"/>' if line else "")
        + "".join(dots) + "</svg>"
    )


def _preset_page(name, history):
    record, source = history[-1]
    status, v = record["status"], record.get("versions") or {}
    parts = [f'<p><a href="../index.html">\u2190 all presets</a></p>', f"<h1>{_e(name)} {_badge(status)}</h1>"]
    if record.get("problem"):
        parts.append(f'<div class="problem">{_e(record["problem"])}</div>')
    parts += [f'<div class="notice">{_e(n)}</div>' for n in record.get("drift") or []]
    rows = "".join(f"<tr><th>{_e(k)}</th><td><code>{_e(val)}</code></td></tr>" for k, val in v.items() if val)
    parts.append(f'<h2>Versions checked</h2>\n<table class="report">{rows}</table>')
    parts.append(f"<h2>Trend ({len(history)} nights)</h2>\n{_trend_svg(history, width=480, height=120)}")
    history_rows = "".join(
        f"<tr><td>{_e(r['date'])}</td><td>{_badge(r['status'])}</td>"
        f"<td>{_ratio_text((r.get('summary') or {}).get('worst_ratio'))}</td>"
        f"<td>{_e((r.get('versions') or {}).get('transformers'))}</td></tr>"
        for r, _ in reversed(history)
    )
    parts.append('<table class="report"><thead><tr><th>date</th><th>status</th><th>worst / limit</th>'
                 f"<th>transformers</th></tr></thead><tbody>{history_rows}</tbody></table>")
    if (source / report_lib.PLOT_FILE).is_file():
        parts.append(f'<h2>Per-layer errors</h2>\n<img src="{_e(name)}/{report_lib.PLOT_FILE}" '
                     f'alt="max abs error of each stage against its limit">')
    if (source / report_lib.MARKDOWN_FILE).is_file():
        report = (source / report_lib.MARKDOWN_FILE).read_text(encoding="utf-8")
        parts.append(f'<div class="report">{_markdown(report)}</div>')
    return _page(f"{name}: nightly parity", "\n".join(parts))


def _markdown(text):
    """The report's Markdown (headings, paragraphs, pipe tables, code spans, bold) as HTML."""
    blocks, table, paragraph = [], [], []

    def flush():
        if table:
            cells = [[c.strip() for c in row.strip().strip("|").split("|")] for row in table
                     if not re.fullmatch(r"\|?[\s|:-]+\|?", row.strip())]
            head = "".join(f"<th>{_inline(c)}</th>" for c in cells[0])
            body = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in cells[1:])
            blocks.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            table.clear()
        if paragraph:
            blocks.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph.clear()

    for line in text.splitlines():
        if line.startswith("#"):
            flush()
            level = min(6, len(line) - len(line.lstrip("#")) + 1)
            blocks.append(f"<h{level}>{_inline(line.lstrip('#').strip())}</h{level}>")
        elif line.lstrip().startswith("|"):
            if paragraph:
                flush()
            table.append(line)
        elif not line.strip():
            flush()
        else:
            if table:
                flush()
            paragraph.append(line.strip())
    flush()
    return "\n".join(blocks)


def _inline(text):
    text = _e(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


def _summary_markdown(rows, histories):
    """The night in Markdown, for a CI job's summary page."""
    counts = _counts(rows, histories)
    lines = [
        f"## presetforge nightly parity: {counts['fail']} failed, {counts['error']} not checked, "
        f"{counts['drift']} drifted, {counts['pass']} passed",
        "",
        "| status | preset | worst / limit | note |",
        "|---|---|---|---|",
    ]
    for name in rows:
        record = histories[name][-1][0]
        icon, word = _LABELS[record["status"]]
        ratio = (record.get("summary") or {}).get("worst_ratio")
        note = "; ".join(filter(None, [record.get("problem"), *(record.get("drift") or [])])).replace("|", "\\|")
        lines.append(f"| {icon} {word} | {name} | {'' if ratio is None else f'{ratio:.2g}'} | {note} |")
    return "\n".join(lines) + "\n"

