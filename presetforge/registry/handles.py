"""Preset handles: one parser for every spelling, one resolver to a local directory.

Spellings: a built-in name (``gpt2_base_en``), ``hf://org/repo[@revision]``,
``kaggle://owner/model/keras/variation[/version]``, ``file://path`` or a path.
"""

import dataclasses
import re
from pathlib import Path

from presetforge import preset
from presetforge.errors import HandleError, HubError, IntegrityError
from presetforge.registry import catalog, hub, local

_NAME = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")
_HF = re.compile(r"^hf://(?P<repo>[\w.-]+/[\w.-]+)(?:@(?P<revision>[\w./-]+))?$")
_KAGGLE = re.compile(
    r"^kaggle://(?P<owner>[\w-]+)/(?P<model>[\w-]+)/(?P<framework>[\w-]+)/(?P<variation>[\w.-]+)(?:/(?P<version>\d+))?$"
)


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
    """Turn a handle (string or path) into one of the handle types, or raise ``HandleError``."""
    if isinstance(handle, Path):
        return LocalHandle(handle)
    if not isinstance(handle, str) or not handle:
        raise HandleError(f"a preset handle must be a non-empty string or a path, got {handle!r}")
    if handle.startswith("hf://"):
        m = _HF.match(handle)
        if not m:
            raise HandleError(f"malformed Hugging Face handle '{handle}'; expected hf://org/repo[@revision]")
        return HFHandle(m["repo"], m["revision"])
    if handle.startswith("kaggle://"):
        m = _KAGGLE.match(handle)
        if not m:
            raise HandleError(
                f"malformed Kaggle handle '{handle}'; expected kaggle://owner/model/framework/variation[/version]"
            )
        version = int(m["version"]) if m["version"] else None
        return KaggleHandle(m["owner"], m["model"], m["framework"], m["variation"], version)
    if handle.startswith("file://"):
        return LocalHandle(Path(handle[len("file://"):]))
    if "://" in handle:
        raise HandleError(f"unknown handle scheme in '{handle}'; use hf://, kaggle://, file:// or a path")
    if _NAME.match(handle) and not Path(handle).exists():
        return BuiltinHandle(handle)
    return LocalHandle(Path(handle).expanduser())


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


_checkpoint_converter = None


def register_checkpoint_converter(convert_on_load):
    """Let the converters (a layer above this one) turn raw HF checkpoints into presets on load.

    ``convert_on_load(checkpoint_dir) -> preset_dir``; ``presetforge.converters`` registers
    itself when imported, which ``import presetforge`` does.
    """
    global _checkpoint_converter
    _checkpoint_converter = convert_on_load


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


def resolve(handle):
    """The local preset directory ``handle`` names: downloaded if need be, and converted
    (unchecked, cached) when it is a raw HF checkpoint, as keras-hub does."""
    path = _locate(handle)
    if is_hf_checkpoint(path):
        if _checkpoint_converter is None:
            raise HandleError(f"{handle} is a Hugging Face checkpoint; `import presetforge.converters` to load it")
        return _checkpoint_converter(path)
    return path


def _locate(handle):
    parsed = parse(handle)
    if isinstance(parsed, LocalHandle):
        if not parsed.path.is_dir():
            raise HandleError(f"no preset directory at '{parsed.path}'")
        return parsed.path
    if isinstance(parsed, BuiltinHandle):
        return _resolve_builtin(parsed.name)
    return hub.download(parsed)
