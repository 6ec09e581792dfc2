"""The publish gate: only verified presets go out, each target is told once, and only what a
hub confirmed is recorded.

Targets: ``hf://org/name``, ``kaggle://owner/model/keras/variation`` and a local registry
directory (a path or ``file://``). Before any upload: every target parses, every hub target has
credentials, and the preset is verified (its report passed for the exact config, weights and
tokenizer present). Publishing only reads the preset: every target receives the verified bytes.
"""

import dataclasses
import datetime
from pathlib import Path

from presetforge import preset
from presetforge.checks import model_card, report as report_lib
from presetforge.errors import HubError, PresetforgeError, UnauthorizedError
from presetforge.registry import catalog, handles, hf, hub, kaggle, local


class PublishError(PresetforgeError):
    """The preset may not be published (not verified), or the targets are unusable."""


@dataclasses.dataclass
class Outcome:
    """What happened at one target: ``published``, ``up to date``, ``would publish`` or ``failed``."""

    target: str
    status: str
    handle: str | None = None
    error: str | None = None


def _parse_target(target):
    parsed = handles.parse(target)
    if isinstance(parsed, handles.HFHandle) and parsed.revision:
        raise PublishError(f"publish to '{target}': a target names a repo, not a revision")
    if isinstance(parsed, handles.KaggleHandle) and parsed.version:
        raise PublishError(f"publish to '{target}': Kaggle numbers versions itself; drop the version")
    if isinstance(parsed, handles.BuiltinHandle):
        return handles.LocalHandle(Path(target))
    return parsed


def _local_coordinates(name):
    """Where a preset goes in a local registry: its catalog coordinates, or ``local/name/name``."""
    if catalog.entry(name) is not None:
        return handles.coordinates(name)
    return "local", name, name


def prepare(preset_dir):
    """Refuse an unverified preset; otherwise return its identity (its manifest's sha256).

    Only reads: the model card was written with the report, so every target
    receives exactly the bytes that were verified.
    """
    problem = report_lib.verification_problem(preset_dir)
    if problem:
        raise PublishError(f"refusing to publish {preset_dir}: {problem}")
    return preset.sha256_file(Path(preset_dir) / preset.MANIFEST_FILE)


def _publish_one(preset_dir, target, parsed, name, license_id, identity, dry_run):
    if isinstance(parsed, handles.HFHandle):
        if hf.manifest_sha(parsed.repo_id) == identity:
            return Outcome(target, "up to date", f"{target}@{hf.head(parsed.repo_id)}")
        if dry_run:
            return Outcome(target, "would publish")
        commit = hf.upload(preset_dir, parsed.repo_id, f"presetforge: publish {name} ({identity[:12]})")
        return Outcome(target, "published", f"{target}@{commit}")
    if isinstance(parsed, handles.KaggleHandle):
        coords = (parsed.owner, parsed.model, parsed.framework, parsed.variation)
        if kaggle.manifest_sha(*coords) == identity:
            return Outcome(target, "up to date", f"{target}/{kaggle.latest_version(*coords)}")
        if dry_run:
            return Outcome(target, "would publish")
        notes = model_card.version_notes(report_lib.load(preset_dir), preset.read_json(preset_dir, preset.METADATA_FILE))
        version = kaggle.upload(preset_dir, *coords, license=license_id, version_notes=notes)
        return Outcome(target, "published", f"{target}/{version}")
    coords = _local_coordinates(name)
    newest = local.latest(parsed.path, *coords)
    if newest is not None and preset.sha256_file(newest / preset.MANIFEST_FILE) == identity:
        return Outcome(target, "up to date", str(newest))
    if dry_run:
        return Outcome(target, "would publish")
    _, path, _ = local.publish(preset_dir, parsed.path, *coords)
    return Outcome(target, "published", str(path))


def publish(preset_dir, targets, name=None, license_id=None, dry_run=False, record=False):
    """Publish a verified preset to every target; one ``Outcome`` per target, in order.

    A failure at one target does not stop the others; it is reported, never recorded, and a
    second run retries it (targets that already hold the preset are then up to date).
    With ``record``, each hub publication (or confirmed up-to-date state) of a catalog
    preset is written to the catalog with its version and manifest sha256.
    """
    preset_dir = Path(preset_dir)
    name = name or preset_dir.name
    entry = catalog.entry(name)
    license_id = license_id or (entry or {}).get("license") or "other"
    parsed = [(t, _parse_target(t)) for t in targets]
    if not parsed:
        raise PublishError("no --to target given")
    for target, p in parsed:
        if not isinstance(p, handles.LocalHandle):
            problem = hub.credentials_problem(p)
            if problem:
                raise UnauthorizedError(f"cannot publish to {target}: {problem}")
    identity = prepare(preset_dir)
    outcomes = []
    for target, p in parsed:
        try:
            outcome = _publish_one(preset_dir, target, p, name, license_id, identity, dry_run)
        except HubError as e:
            outcome = Outcome(target, "failed", error=f"{e}; publishing again retries it")
        outcomes.append(outcome)
        hub_confirmed = outcome.status in ("published", "up to date") and not isinstance(p, handles.LocalHandle)
        if record and entry is not None and hub_confirmed:
            date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            catalog.record_published(name, outcome.handle, identity, date)
    return outcomes
