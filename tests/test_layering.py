"""Imports only point down the package map (../shared/DESIGN.md): every import of every module,
module-level or inside a function, absolute, relative or through ``importlib``, names a module of
its own layer or a lower one."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "presetforge"

# The package map, bottom up. A module's layer is that of its first name below ``presetforge``.
# ``demo``: the model parts of the `presetforge demo` command; only the command line may use it.
# ``""``: ``presetforge/__init__``, the public API, which puts the classes and the converters together.
LAYERS = {
    "errors": 1, "preset": 1, "atomic": 1, "interrupts": 1, "version": 1,
    "registry": 2,
    "backbones": 3, "tokenizers": 3,
    "converters": 4,
    "checks": 5,
    "pipeline": 6,
    "cli": 7, "demo": 7, "__main__": 7, "": 7,
}  # fmt: skip

DYNAMIC_IMPORTS = {("importlib", "import_module"), (None, "import_module"), (None, "__import__")}


def modules(root):
    """``{dotted name: (path, is_package)}`` of every module under the package directory ``root``."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def layer(module, package):
    """The layer of a dotted module name, or ``None`` when the package map has no row for it."""
    return LAYERS.get(module[len(package) + 1:].split(".")[0] if module != package else "")


def _call_name(node):
    func = node.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return func.value.id, func.attr
    if isinstance(func, ast.Name):
        return None, func.id
    return None, None


def _literal_values(call, tree):
    """The strings a dynamic import's argument can be: a literal, or the variable of an enclosing
    loop over literals; ``None`` when the source does not say."""
    arg = call.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return [arg.value]
    for loop in ast.walk(tree):
        if (
            isinstance(loop, ast.For)
            and isinstance(arg, ast.Name)
            and isinstance(loop.target, ast.Name)
            and loop.target.id == arg.id
            and any(node is call for node in ast.walk(loop))
            and isinstance(loop.iter, (ast.Tuple, ast.List))
            and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in loop.iter.elts)
        ):
            return [e.value for e in loop.iter.elts]
    return None


def imports(module, path, is_package, known):
    """``[(line, imported module)]`` for every import in one module; an import whose target cannot
    be read from the source is ``(line, None)``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    own_package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = own_package.split(".")[: len(own_package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            for alias in node.names:  # `from package import submodule` imports the submodule
                submodule = f"{source}.{alias.name}"
                found.append((node.lineno, submodule if submodule in known else source))
        elif isinstance(node, ast.Call) and _call_name(node) in DYNAMIC_IMPORTS and node.args:
            values = _literal_values(node, tree)
            found += [(node.lineno, v) for v in values] if values is not None else [(node.lineno, None)]
    return found


def violations(root):
    """One line per import that points up the package map, names a module with no layer, or
    cannot be read; empty when every import points down."""
    package = root.name
    known = modules(root)
    problems = []
    for module, (path, is_package) in known.items():
        own = layer(module, package)
        if own is None:
            problems.append(f"{module} has no layer: add its row to the package map (DESIGN.md, LAYERS)")
            continue
        for line, target in imports(module, path, is_package, known):
            where = f"{module} (layer {own}, line {line})"
            if target is None:
                problems.append(f"{where} imports a module named at run time: use a literal name")
            elif target == package or target.startswith(package + "."):
                theirs = layer(target, package)
                if theirs is None:
                    problems.append(f"{where} imports {target}, which has no layer")
                elif theirs > own:
                    problems.append(f"{where} imports {target} (layer {theirs}): an upward import")
    return problems


def test_every_import_points_down_the_package_map():
    problems = violations(PACKAGE)
    assert not problems, "\n".join(problems)


def test_the_walk_sees_every_kind_of_import(tmp_path):
    """On a package made for it: each kind of upward import is caught, named with both layers."""
    root = tmp_path / "presetforge"
    files = {
        "__init__.py": "from presetforge import errors\n",
        "errors.py": "",
        "registry/__init__.py": "",
        "registry/handles.py": (
            "from presetforge import errors\n"  # down: fine
            "from . import local\n"  # same layer: fine
            "def lazy():\n"
            "    from ..checks import report\n"  # relative, inside a function
            "    import presetforge.converters.on_load\n"
        ),
        "registry/local.py": (
            "import importlib\n"
            "importlib.import_module('presetforge.pipeline.push')\n"
            "for name in ('json', 'presetforge.cli'):\n"
            "    __import__(name)\n"
            "def f(name):\n"
            "    return importlib.import_module(name)\n"
        ),
        "checks/__init__.py": "",
        "checks/report.py": "from presetforge import Backbone\n",  # a name of the public API: layer 7
        "converters/__init__.py": "",
        "converters/on_load.py": "",
        "pipeline/__init__.py": "",
        "pipeline/push.py": "",
        "cli.py": "",
        "stray.py": "",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    assert sorted(violations(root)) == [
        "presetforge.checks.report (layer 5, line 1) imports presetforge (layer 7): an upward import",
        "presetforge.registry.handles (layer 2, line 4) imports presetforge.checks.report (layer 5): an upward import",
        "presetforge.registry.handles (layer 2, line 5) imports presetforge.converters.on_load (layer 4): "
        "an upward import",
        "presetforge.registry.local (layer 2, line 2) imports presetforge.pipeline.push (layer 6): an upward import",
        "presetforge.registry.local (layer 2, line 4) imports presetforge.cli (layer 7): an upward import",
        "presetforge.registry.local (layer 2, line 6) imports a module named at run time: use a literal name",
        "presetforge.stray has no layer: add its row to the package map (DESIGN.md, LAYERS)",
    ]

