"""Preset handles: one parser for every spelling, one resolver to a local directory.

Spellings: a built-in name (``gpt2_base_en``), ``hf://org/repo[@revision]``,
``kaggle://owner/model/keras/variation[/version]``, a ``file:`` URI (RFC 8089) or a path.
``parse`` validates every part of a hub handle (ASCII names, no ``..``, no empty parts, no
control characters or look-alike slashes) so nothing malformed ever reaches a hub client.
"""

import dataclasses
import re
import unicodedata
import urllib.parse
from pathlib import Path

from presetforge import preset
from presetforge.errors import HandleError, HubError, IntegrityError
from presetforge.registry import catalog, hub, kaggle, local

_NAME = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")
_HF_HINT = "hf://org/repo[@revision]"
_KAGGLE_HINT = "kaggle://owner/model/framework/variation[/version]"
# Hugging Face repo ids: the rules of huggingface_hub's validate_repo_id, ASCII only.
_HF_NAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
_HF_REPO_ID_MAX = 96
# One slash-separated component of a git ref (branch, tag, refs/pr/N) or a commit sha.
_REF_COMPONENT = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9_.+-]*$")
_KAGGLE_SLUG = re.compile(r"^[A-Za-z0-9_-]+$")
_KAGGLE_VARIATION = re.compile(r"^[A-Za-z0-9_-](?:[A-Za-z0-9_.-]*[A-Za-z0-9_-])?$")
_KAGGLE_VERSION = re.compile(r"^[1-9][0-9]*$")


@dataclasses.dataclass(frozen=True)
class LocalHandle:
    path: Path


@dataclasses.dataclass(frozen=True)
class BuiltinHandle:
    name: str


@dataclasses.dataclass(frozen=True)
class HFHandle:
    repo_id: str
    revision: str | None = None


@dataclasses.dataclass(frozen=True)
class KaggleHandle:
    owner: str
    model: str
    framework: str
    variation: str
    version: int | None = None


def parse(handle):
    """Turn a handle (string or path) into one of the handle types, or raise ``HandleError``.

    Purely local: a malformed handle fails here, before any hub is contacted.
    """
    if isinstance(handle, Path):
        return LocalHandle(handle)
    if not isinstance(handle, str) or not handle:
        raise HandleError(f"a preset handle must be a non-empty string or a path, got {handle!r}")
    if handle.startswith("hf://"):
        return _parse_hf(handle)
    if handle.startswith("kaggle://"):
        return _parse_kaggle(handle)
    bad = _bad_character(handle, ascii_only=False)
    if bad:
        raise HandleError(f"a preset handle may not contain a {bad}: {ascii(handle)}")
    if handle.startswith("file:"):
        return LocalHandle(_file_uri_path(handle))
    if "://" in handle:
        raise HandleError(f"unknown handle scheme in '{handle}'; use hf://, kaggle://, file:// or a path")
    if _NAME.match(handle) and not Path(handle).exists():
        return BuiltinHandle(handle)
    return LocalHandle(Path(handle).expanduser())


def _bad_character(text, ascii_only):
    """The first character of ``text`` that has no place in a handle, described; else ``None``.

    Control characters (NUL included) never have one. Hub handles are ASCII without whitespace or
    backslashes, which also keeps out look-alike slashes (U+2215, U+2044, U+FF0F, U+29F8, ...).
    """
    for ch in text:
        code = f"U+{ord(ch):04X}"
        if unicodedata.category(ch) == "Cc":
            return f"control character {code}"
        if not ascii_only:
            continue
        if not ch.isascii():
            return f"non-ASCII character {code} ({unicodedata.name(ch, 'unnamed')})"
        if ch.isspace():
            return f"space {code}"
        if ch == "\\":
            return "backslash"
    return None


def _parse_hf(handle):
    repo_id, at, revision = handle[len("hf://"):].partition("@")
    bad = _bad_character(handle, ascii_only=True)
    problem = (
        (bad and f"it contains a {bad}")
        or _hf_repo_id_problem(repo_id)
        or (at and _hf_revision_problem(revision))
    )
    if problem:
        raise HandleError(f"malformed Hugging Face handle {ascii(handle)}: {problem}; expected {_HF_HINT}")
    return HFHandle(repo_id, revision or None)


def _hf_repo_id_problem(repo_id):
    parts = repo_id.split("/")
    if "" in parts:
        return f"the repo id {ascii(repo_id)} has an empty part"
    if len(parts) != 2:
        return f"the repo id {ascii(repo_id)} is not org/repo"
    for label, part in zip(("org", "repo name"), parts):
        doubled = next((s for s in ("..", "--") if s in part), None)
        if doubled:
            return f"the {label} {ascii(part)} contains '{doubled}'"
        if not _HF_NAME.match(part):
            return (
                f"the {label} {ascii(part)} is not letters, digits, '_', '-' and '.' "
                "beginning and ending with a letter, digit or '_'"
            )
    if repo_id.endswith(".git"):
        return f"the repo name {ascii(parts[1])} ends in '.git'"
    if len(repo_id) > _HF_REPO_ID_MAX:
        return f"the repo id is longer than {_HF_REPO_ID_MAX} characters"
    return None


def _hf_revision_problem(revision):
    """Why ``revision`` is not a branch, tag, commit sha or ``refs/pr/N`` (git's ref-name rules)."""
    if not revision:
        return "the revision after '@' is empty"
    if ".." in revision:
        return f"the revision {ascii(revision)} contains '..'"
    components = revision.split("/")
    if "" in components:
        return f"the revision {ascii(revision)} has an empty path segment (a leading, trailing or doubled '/')"
    for component in components:
        if not _REF_COMPONENT.match(component) or component.endswith((".", ".lock")):
            return (
                f"the revision {ascii(revision)} is not a branch, tag, commit sha or refs/pr/N "
                f"(at {ascii(component)})"
            )
    return None


def _parse_kaggle(handle):
    parts = handle[len("kaggle://"):].split("/")
    bad = _bad_character(handle, ascii_only=True)
    problem = (bad and f"it contains a {bad}") or _kaggle_problem(parts)
    if problem:
        raise HandleError(f"malformed Kaggle handle {ascii(handle)}: {problem}; expected {_KAGGLE_HINT}")
    owner, model, framework, variation = parts[:4]
    kaggle.check_framework(owner, model, framework, variation)
    return KaggleHandle(owner, model, framework, variation, int(parts[4]) if len(parts) == 5 else None)


def _kaggle_problem(parts):
    if len(parts) not in (4, 5):
        return f"it has {len(parts)} parts, not 4 or 5"
    labelled = list(zip(("owner", "model", "framework", "variation", "version"), parts))
    for label, part in labelled:
        if not part:
            return f"the {label} is empty"
        if ".." in part:
            return f"the {label} {ascii(part)} contains '..'"
    for label, part in labelled[:3]:
        if not _KAGGLE_SLUG.match(part):
            return f"the {label} {ascii(part)} is not letters, digits, '_' and '-'"
    if not _KAGGLE_VARIATION.match(parts[3]):
        return f"the variation {ascii(parts[3])} is not letters, digits, '_', '-' and '.' between them"
    if len(parts) == 5 and not _KAGGLE_VERSION.match(parts[4]):
        return f"the version {ascii(parts[4])} is not a whole number from 1 up, without leading zeros"
    return None


def _file_uri_path(uri):
    """The local path of a ``file:`` URI (RFC 8089): ``file:///p``, ``file:/p`` or
    ``file://localhost/p``, percent-decoded. Other hosts are refused: nothing remote is read."""
    parts = urllib.parse.urlsplit(uri)
    if parts.netloc.lower() not in ("", "localhost"):
        raise HandleError(
            f"the file URI '{uri}' names the host '{parts.netloc}'; only local files are supported "
            "(file:///absolute/path or file://localhost/absolute/path)"
        )
    if parts.query or parts.fragment:
        raise HandleError(f"the file URI '{uri}' has a query or fragment; percent-encode '?' and '#' in paths")
    if not parts.path.startswith("/"):
        raise HandleError(f"the file URI '{uri}' has no absolute path; expected file:///absolute/path")
    path = urllib.parse.unquote(parts.path)
    bad = _bad_character(path, ascii_only=False)
    if bad:
        raise HandleError(f"the file URI '{uri}' decodes to a path with a {bad}")
    return Path(path)


def coordinates(name):
    """``(owner, model, variation)`` of a built-in preset: those of its Kaggle target, which
    the local registry mirrors."""
    entry = catalog.entry(name)
    for target in entry["targets"]:
        parsed = parse(target)
        if isinstance(parsed, KaggleHandle):
            return parsed.owner, parsed.model, parsed.variation
    return "presetforge", entry["family"], name


def _resolve_builtin(name):
    """The one preset a catalog name stands for, never a look-alike.

    The catalog pins each name to the manifest sha256 of its newest confirmed
    publication. A local-registry version with exactly that manifest is used as
    is; otherwise the newest publication holding it is downloaded and must prove
    that identity (``IntegrityError`` if not). No other copy loads by the name.

    A catalog preset not yet published to any hub has no pin; what a user
    published into their own local registry under its name (the offline demo
    does) then loads, the newest version, provided it is the catalog's
    architecture at the catalog's size, so a toy published as ``gpt2_base_en``
    never passes for it. Once the catalog pins the name, the pin alone decides.
    """
    entry = catalog.entry(name)
    if entry is None:
        known = ", ".join(sorted(catalog.entries()))
        raise HandleError(f"unknown preset '{name}'; built-in presets are: {known}")
    root, coords = local.default_root(), coordinates(name)
    pin = catalog.pin(name)
    if pin is None:
        return _published_locally(name, entry, root, coords)
    held = local.holding(root, *coords, pin)
    if held is not None:
        return held
    failure = None
    for record in catalog.publications(name, pin):
        try:
            path = hub.download(parse(record["handle"]))
        except HubError as e:
            failure = e
            continue
        identity = preset.verify(path)
        if identity != pin:
            raise IntegrityError(
                preset.MANIFEST_FILE, f"{record['handle']} has manifest sha256 {identity}, the catalog pins {pin}"
            )
        return path
    raise failure


def _published_locally(name, entry, root, coords):
    """The newest local-registry version of an unpinned catalog preset, if it is the catalog's model."""
    held = local.latest(root, *coords)
    if held is None:
        raise HandleError(
            f"preset '{name}' is in the catalog but has not been published yet "
            f"(neither to a hub nor into the local registry {root})"
        )
    metadata = preset.read_json(held, preset.METADATA_FILE)
    metadata = metadata if isinstance(metadata, dict) else {}
    found = (metadata.get("backbone_class"), metadata.get("parameter_count"))
    wanted = (entry["backbone_class"], entry["parameter_count"])
    if found != wanted:
        raise HandleError(
            f"the local registry's {held} holds a {found[0]} of {found[1]} parameters, not the catalog's "
            f"{name} (a {wanted[0]} of {wanted[1]} parameters); refusing to load it by that name"
        )
    return held


def is_hf_checkpoint(path):
    """A Hugging Face model directory rather than a preset: ``config.json`` with a ``model_type``
    and no manifest."""
    path = Path(path)
    if (path / preset.MANIFEST_FILE).is_file() or not (path / "config.json").is_file():
        return False
    try:
        return "model_type" in preset.read_json(path, "config.json")
    except Exception:
        return False


def resolve(handle, convert_checkpoint=None):
    """The local preset directory ``handle`` names, downloaded if need be.

    A raw HF checkpoint (local or on the hub) becomes a preset through ``convert_checkpoint``
    (``checkpoint_dir -> preset_dir``), as keras-hub converts on load. Conversion is two layers
    up (``converters``), so it is passed down by the caller that has it, never imported here;
    without it a raw checkpoint is refused, naming the ways to load it.
    """
    path = _locate(handle)
    if not is_hf_checkpoint(path):
        return path
    if convert_checkpoint is None:
        raise HandleError(
            f"{handle} is a Hugging Face checkpoint, not a preset: load it with presetforge.Backbone or "
            "presetforge.Tokenizer (which convert it on load), or convert it with `presetforge convert`"
        )
    return convert_checkpoint(path)


def _locate(handle):
    parsed = parse(handle)
    if isinstance(parsed, LocalHandle):
        if not parsed.path.is_dir():
            raise HandleError(f"no preset directory at '{parsed.path}'")
        return parsed.path
    if isinstance(parsed, BuiltinHandle):
        return _resolve_builtin(parsed.name)
    return hub.download(parsed)
