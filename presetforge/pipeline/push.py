"""The maintainer's pipeline for catalog presets: download upstream at the pinned revision,
convert, check, publish to the catalog's targets, record what the hubs confirmed.

An upstream revision that is not a commit (a branch such as ``main``, or none) is resolved to
the commit it points at before anything is downloaded; that commit is converted, recorded as
the preset's provenance and, once a hub confirms the preset, written into the catalog, so the
next run converts the very same files (and finds every target up to date).
"""

import dataclasses
import re
from pathlib import Path

from presetforge.checks import parity, report as report_lib
from presetforge.converters import convert
from presetforge.errors import PresetforgeError
from presetforge.pipeline import publish
from presetforge.registry import catalog, handles, hf, hub


@dataclasses.dataclass
class PushResult:
    """One catalog preset's journey; ``status`` is ``published``, ``verified``, ``parity failed``,
    ``publish failed``, ``error`` or ``planned``."""

    name: str
    status: str
    worst_max_abs: float | None = None
    outcomes: list = dataclasses.field(default_factory=list)
    error: str | None = None


def names_for(family_or_name):
    """The catalog presets a command names, or a clear error."""
    names = catalog.family(family_or_name)
    if not names:
        families = sorted({e["family"] for e in catalog.entries().values()})
        raise PresetforgeError(
            f"'{family_or_name}' is neither a catalog preset nor a family; families: {', '.join(families)}"
        )
    return names


_COMMIT = re.compile(r"[0-9a-f]{40}")


def upstream_handle(name):
    """``hf://repo@revision`` of a catalog preset's pinned upstream checkpoint."""
    source = catalog.entry(name)["source"]
    return f"{source['handle']}@{source['revision']}" if source.get("revision") else source["handle"]


def pinned_upstream(name):
    """The catalog preset's upstream as ``HFHandle(repo, commit)``: a branch (or no revision,
    the default branch) is resolved to the commit it points at now, asking the Hub."""
    upstream = handles.parse(upstream_handle(name))
    if upstream.revision and _COMMIT.fullmatch(upstream.revision):
        return upstream
    return handles.HFHandle(upstream.repo_id, hf.head(upstream.repo_id, upstream.revision))


def push_one(name, workdir, dtype="float32", push=True, dry_run=False, progress=None):
    """Convert, check and (with ``push``) publish one catalog preset; never raises for its own failures."""
    entry = catalog.entry(name)
    if dry_run:
        return PushResult(name, "planned")
    try:
        upstream = pinned_upstream(name)
        source = hub.download(upstream)
        output = Path(workdir) / name
        convert(source, output, dtype=dtype, progress=progress, source_repo=upstream.repo_id, revision=upstream.revision)
        report = parity.check(output, source)
        report_lib.write(output, report, name=name)
    except PresetforgeError as e:
        return PushResult(name, "error", error=str(e))
    if not report.passed:
        return PushResult(name, "parity failed", report.worst_max_abs, error=report.first_failure)
    if not push:
        return PushResult(name, "verified", report.worst_max_abs)
    try:
        outcomes = publish.publish(output, entry["targets"], name=name, record=True)
    except PresetforgeError as e:
        return PushResult(name, "publish failed", report.worst_max_abs, error=str(e))
    if any(o.status in ("published", "up to date") for o in outcomes):
        catalog.record_source_revision(name, upstream.revision)  # what the confirmed preset came from
    failed = [o for o in outcomes if o.status == "failed"]
    status = "publish failed" if failed else "published"
    return PushResult(name, status, report.worst_max_abs, outcomes, "; ".join(o.error for o in failed) or None)


def credentials_problem(names):
    """The first missing credential among the targets of ``names``, before any work is done."""
    for name in names:
        for target in catalog.entry(name)["targets"]:
            if isinstance(handles.parse(target), (handles.HFHandle, handles.KaggleHandle)):
                problem = hub.credentials_problem(target)
                if problem:
                    return f"cannot publish {name} to {target}: {problem}"
    return None


def check_published(name):
    """The parity report of a catalog preset as published (pinned version, manifest verified)
    against its pinned upstream; ``None`` when it has not been published."""
    if not catalog.entry(name)["published"]:
        return None
    published = handles.resolve(name)
    upstream = hub.download(handles.parse(upstream_handle(name)))
    return parity.check(published, upstream)
