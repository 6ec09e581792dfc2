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
    """A built-in preset: from the local registry if it holds one, else its pinned publication,
    whose downloaded manifest must be the one the catalog recorded."""
    entry = catalog.entry(name)
    if entry is None:
        known = ", ".join(sorted(catalog.entries()))
        raise HandleError(f"unknown preset '{name}'; built-in presets are: {known}")
    held = local.latest(local.default_root(), *coordinates(name))
    if held is not None:
        return held
    if not entry["published"]:
        raise HandleError(f"preset '{name}' is in the catalog but has not been published yet")
    failure = None
    for record in entry["published"]:
        try:
            path = hub.download(parse(record["handle"]))
        except HubError as e:
            failure = e
            continue
        identity = preset.verify(path)
        if identity != record["manifest_sha256"]:
            raise IntegrityError(
                preset.MANIFEST_FILE,
                f"{record['handle']} has manifest sha256 {identity}, the catalog pins {record['manifest_sha256']}",
            )
        return path
    raise failure


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
