"""presetforge stays TensorFlow-free: nothing it depends on, with every extra, pulls TensorFlow."""

import importlib.metadata
import importlib.util
import re

from packaging.requirements import Requirement

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
