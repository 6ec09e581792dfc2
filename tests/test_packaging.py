"""Packaging: every import declared, CI on the keras floor, and no TensorFlow anywhere in the
dependency tree, with every extra."""

import ast
import os
import subprocess
import textwrap
import importlib.metadata
import importlib.util
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

FORBIDDEN = re.compile(r"^(tensorflow|tf[-_]keras|tf[-_]nightly|tensorflow[-_].*)$")


def _dependency_closure(root, extras):
    """Names of every installed distribution reachable from ``root[extras]``."""
    seen, queue = set(), [(root, set(extras))]
    while queue:
        name, wanted = queue.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        try:
            requirements = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for line in requirements:
            req = Requirement(line)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in wanted | {""}):
                queue.append((req.name, set(req.extras)))
    return seen


def test_no_tensorflow_in_the_dependency_tree():
    closure = _dependency_closure("presetforge", {"torch", "jax", "reference", "dev"})
    assert {"keras", "torch", "transformers", "huggingface-hub", "kagglehub"} <= closure
    assert sorted(n for n in closure if FORBIDDEN.match(n)) == []


def test_tensorflow_is_not_installed():
    assert importlib.util.find_spec("tensorflow") is None


# --- every runtime import is declared ------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
LOWEST_KERAS_CONSTRAINTS = ROOT / ".ci" / "constraints-keras-lowest.txt"


def _declared():
    """``(core, extras)``: canonical names of the distributions pyproject.toml requires."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    extras = {
        canonicalize_name(Requirement(r).name) for reqs in project["optional-dependencies"].values() for r in reqs
    }
    return core, extras - {"presetforge"}


def _third_party_imports():
    """``{top-level module: (file, lazy)}`` for every non-stdlib import in presetforge/; ``lazy``
    when every import of it sits inside a function (so only code that needs it pays for it)."""
    found = {}
    for path in sorted((ROOT / "presetforge").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        inside = {id(n) for f in functions for n in ast.walk(f) if n is not f}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top == "presetforge":
                    continue
                where, lazy = found.get(top, (path.relative_to(ROOT).as_posix(), True))
                if lazy and id(node) not in inside:  # name the first module-level import
                    where, lazy = path.relative_to(ROOT).as_posix(), False
                found[top] = (where, lazy)
    return found


def test_every_imported_distribution_is_declared():
    core, extras = _declared()
    distributions = importlib.metadata.packages_distributions()
    imports = _third_party_imports()
    assert {"keras", "kagglesdk", "requests", "torch"} <= imports.keys()  # the walk sees them
    problems = []
    for module, (where, lazy) in sorted(imports.items()):
        names = {canonicalize_name(d) for d in distributions.get(module, [])}
        if not names:
            problems.append(f"{module} (imported in {where}) is not installed")
        elif not names & core and not (lazy and names & extras):
            need = "a dependency" if not lazy else "a dependency or an extra"
            problems.append(f"{module} (imported in {where}) comes from {sorted(names)}, which is not {need}")
    assert problems == []


def test_ci_runs_the_lowest_keras_the_floor_allows():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (keras,) = [Requirement(r) for r in project["dependencies"] if Requirement(r).name == "keras"]
    floor = [Version(s.version) for s in keras.specifier if s.operator == ">="]
    assert len(floor) == 1 and any(s.operator == "<" for s in keras.specifier)  # a floor and a bound
    pins = [
        Requirement(line)
        for line in LOWEST_KERAS_CONSTRAINTS.read_text().splitlines()
        if line.strip() and not line.startswith(("#", "-"))
    ]
    assert [(p.name, [(s.operator, Version(s.version)) for s in p.specifier]) for p in pins] == [
        ("keras", [("==", floor[0])])
    ]
    assert Version(importlib.metadata.version("keras")) in keras.specifier


LIGHT_COMMANDS = textwrap.dedent(
    """
    import sys
    from click.testing import CliRunner
    from presetforge.cli import main
    for args in (["--help"], ["list"], ["list", "--json"], ["publish", "--help"], ["check", "--help"]):
        assert CliRunner().invoke(main, args).exit_code == 0, args
    import presetforge.pipeline.publish
    print(sorted({m.split(".")[0] for m in sys.modules} & {"keras", "torch", "jax", "transformers", "h5py"}))
    """
)


def test_help_list_and_publish_import_no_framework():
    """The command line answers at once: only commands that compute load Keras and a backend."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", LIGHT_COMMANDS], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_backbones_are_there_on_first_use():
    import presetforge

    assert presetforge.Backbone.__name__ == "Backbone" and "LlamaBackbone" in presetforge.__all__
    assert all(hasattr(presetforge, name) for name in presetforge.__all__)
