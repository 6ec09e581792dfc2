"""The catalog's numbers are the code's: each preset's parameter count is what its converter and
backbone build from its upstream config."""

import pytest

from presetforge.backbones import weights
from presetforge.converters import get_converter
from presetforge.registry import catalog


@pytest.mark.parametrize("name", sorted(catalog.entries()))
def test_parameter_count_is_the_built_backbones(name):
    entry = catalog.entry(name)
    converter = get_converter(entry["config"]["model_type"])
    backbone = weights.abstract_backbone(converter.backbone_cls, **converter.arguments(entry["config"]))
    assert type(backbone).__name__ == entry["backbone_class"]
    assert backbone.count_params() == entry["parameter_count"]
