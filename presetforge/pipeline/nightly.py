"""``presetforge check --all``: the nightly parity check of every published catalog preset.

For each catalog preset with a pinned publication, the published preset is fetched from its
hub (handle resolution proves it is the pinned manifest), the upstream checkpoint at the
catalog's revision too, and the whole gate runs: weights, stages, logits, tokenizer. Each
preset gets a directory in the report dir holding the report (``parity.json``/``.md``/``.png``)
and ``nightly.json``, the night's record: what was checked (``versions``), its ``status``, the
first ``problem`` and the ``drift`` notices.

Status, worst first: ``fail`` (the gate failed, or the hub's copy is not the pinned one),
``error`` (it could not be checked: a hub unreachable, a file missing), ``drift`` (passed, with
a notice), ``pass``. Drift is a notice, never a failure, of two kinds:

- the upstream repo's head is no longer the commit the catalog pins (a new upstream commit:
  the preset may want converting again);
- the installed transformers is not the version of the previous night's record and some
  stage's error moved by more than its limit. The preset's bytes and our code are the same,
  so a stage error moving by d means the reference's outputs moved by at least d.
"""

import datetime
import importlib.metadata
from pathlib import Path

from presetforge import preset
from presetforge.checks import parity, report as report_lib
from presetforge.errors import IntegrityError, PresetforgeError
from presetforge.pipeline import staged
from presetforge.pipeline import push
from presetforge.registry import catalog, handles, hf, hub
from presetforge.version import __version__

RECORD_FILE = "nightly.json"
RECORD_VERSION = 1
STATUSES = ("fail", "error", "drift", "pass")  # worst first
FAILING = ("fail", "error")


class NightlyError(PresetforgeError):
    """The nightly check cannot start: a report directory that is a file, a missing previous one."""


def published(family=None):
    """The catalog presets with a pinned publication, in catalog order; ``family`` narrows them to
    a family or one preset."""
    names = push.names_for(family) if family else list(catalog.entries())
    return [name for name in names if catalog.pin(name)]


def check_all(report_dir, family=None, previous_dir=None, progress=None, now=None):
    """Check every published preset (of ``family``) and write its report under ``report_dir``;
    the records, in catalog order.

    ``previous_dir`` is the previous night's report dir (default: what ``report_dir`` holds from
    its last run); ``progress(index, total, name, step)`` hears each step; ``now`` dates the records.
    """
    report_dir = Path(report_dir)
    if report_dir.exists() and not report_dir.is_dir():
        raise NightlyError(f"the report dir '{report_dir}' is a file, not a directory")
    if previous_dir is not None and not Path(previous_dir).is_dir():
        raise NightlyError(f"the previous night's report dir '{previous_dir}' is not a directory")
    names = published(family)
    records = []
    for index, name in enumerate(names, 1):
        step = (lambda text, name=name, index=index: progress(index, len(names), name, text)) if progress else None
        records.append(check_one(name, report_dir, previous_dir, progress=step, now=now))
    return records


def check_one(name, report_dir, previous_dir=None, progress=None, now=None):
    """Check the published preset ``name``, write ``report_dir/name`` whole, return its record."""
    say = progress or (lambda text: None)
    target = Path(report_dir) / name
    record = _new_record(name, now)
    report = None
    try:
        previous = _previous(Path(previous_dir) / name if previous_dir is not None else target)
        say("fetching the published preset")
        preset_dir = handles.resolve(name)  # downloads the pinned publication and proves its manifest
        upstream = handles.parse(push.upstream_handle(name))
        say(f"fetching upstream {push.upstream_handle(name)}")
        upstream_dir = hub.download(upstream)
        commit = upstream_dir.name  # the snapshot's commit
        record["versions"]["upstream"] = f"{upstream.repo_id}@{commit}"
        say("asking upstream for its head")
        head = hf.head(upstream.repo_id)
        record["versions"]["upstream_head"] = head
        say("checking weights, stages, logits and tokenizer")
        report = parity.check(preset_dir, upstream_dir)
    except IntegrityError as e:
        record.update(status="fail", problem=str(e))
    except (PresetforgeError, ValueError, OSError) as e:
        record.update(status="error", problem=str(e))
    else:
        record["summary"] = summary(report)
        record["drift"] = _head_drift(upstream.repo_id, commit, head) + _reference_drift(previous, report)
        record["problem"] = report.first_failure
        record["status"] = "fail" if not report.passed else "drift" if record["drift"] else "pass"
    write(target, record, report)
    return record


def _new_record(name, now):
    pin = catalog.pin(name)
    newest = catalog.publications(name, pin)[0]["handle"] if pin else None
    date = now or datetime.datetime.now(datetime.timezone.utc)
    return {
        "format_version": RECORD_VERSION,
        "preset": name,
        "family": catalog.entry(name)["family"],
        "date": date.isoformat(timespec="seconds"),
        "status": None,
        "problem": None,
        "drift": [],
        "summary": None,
        "versions": {
            "preset": newest,
            "manifest_sha256": pin,
            "upstream": push.upstream_handle(name).removeprefix("hf://"),
            "upstream_head": None,
            "transformers": _installed("transformers"),
            "keras": _installed("keras"),
            "presetforge": __version__,
        },
    }


def _installed(distribution):
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def summary(report):
    """The numbers a dashboard row shows: the report's summary, the stage worst against its
    limit, logits top-1 agreement."""
    worst = max(report.stages, key=lambda s: s.max_abs / s.limit)
    logits = next((s for s in report.stages if s.top1_positions is not None), None)
    return {
        **report.summary(),
        "worst_stage": worst.name,
        "worst_stage_max_abs": worst.max_abs,
        "worst_stage_limit": worst.limit,
        "worst_ratio": worst.max_abs / worst.limit,
        "top1_agree": logits.top1_agree if logits else None,
        "top1_positions": logits.top1_positions if logits else None,
        "tokenizer_texts": report.tokenizer.texts,
    }


def _head_drift(repo_id, commit, head):
    if head == commit:
        return []
    return [f"upstream {repo_id} has moved: its head is {head[:12]}, the catalog pins {commit[:12]}"]


def _reference_drift(previous, report):
    """The notice that transformers, since the previous night, moved a stage's reference numbers by
    more than the stage's limit; none without a previous night or with the same transformers."""
    if previous is None:
        return []
    record, stages = previous
    before, now = record["versions"].get("transformers"), report.reference.get("transformers_version")
    if not before or before == now or not stages:
        return []
    errors = {s["name"]: s["max_abs"] for s in stages}
    moved = [s for s in report.stages if s.name in errors and abs(s.max_abs - errors[s.name]) > s.limit]
    if not moved:
        return []
    worst = max(moved, key=lambda s: abs(s.max_abs - errors[s.name]) / s.limit)
    return [
        f"transformers {before} -> {now} moved the reference beyond tolerance: stage '{worst.name}' error "
        f"{errors[worst.name]:.2e} -> {worst.max_abs:.2e} (limit {worst.limit:.1e})"
        + (f", {len(moved)} stages in all" if len(moved) > 1 else "")
    ]


def _previous(directory):
    """``(record, stages)`` of a previous night's report of one preset, or ``None`` when there is none."""
    record = read_record(directory)
    if record is None:
        return None
    report_file = directory / report_lib.REPORT_FILE
    stages = preset.read_json(directory, report_lib.REPORT_FILE).get("stages") if report_file.is_file() else None
    return record, stages


def read_record(directory):
    """The night's record in ``directory`` (``nightly.json``), or ``None`` when it has none."""
    if not (Path(directory) / RECORD_FILE).is_file():
        return None
    record = preset.read_json(directory, RECORD_FILE)
    if not isinstance(record, dict) or record.get("format_version") != RECORD_VERSION:
        raise NightlyError(f"{Path(directory) / RECORD_FILE} is not a nightly record of format {RECORD_VERSION}")
    return record


def write(target, record, report=None):
    """Replace the directory ``target`` with the record and, when the check ran, the report's three files."""
    with staged.directory(target) as stage:
        if report is not None:
            preset.write_json(stage / report_lib.REPORT_FILE, report.to_json())
            (stage / report_lib.MARKDOWN_FILE).write_text(report.to_markdown(), encoding="utf-8")
            (stage / report_lib.PLOT_FILE).write_bytes(report.to_png())
        preset.write_json(stage / RECORD_FILE, record)
