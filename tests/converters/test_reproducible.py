"""Reproducible presets: the same checkpoint, converter, dtype and presetforge version give the
same bytes, manifest included, whatever the directory, process or time; dates come only from
``SOURCE_DATE_EPOCH``."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

import presetforge
from presetforge import Backbone, PresetError, preset
from presetforge.backbones.weights import DEFAULT_MAX_SHARD_SIZE_GB
from presetforge.converters import convert
from tests.checkpoints import make_bert, make_gpt2

SHARDED = 60000 / 1024**3  # the tiny GPT-2 in a few shards, so the index is covered too
_CONVERT = "import sys; from presetforge.converters import convert; convert(sys.argv[1], sys.argv[2], max_shard_size_gb=float(sys.argv[3]))"


def _files(root):
    """Every file of a preset: relative name → bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def _assert_same_bytes(a, b):
    files_a, files_b = _files(a), _files(b)
    assert sorted(files_a) == sorted(files_b)
    differing = [name for name in files_a if files_a[name] != files_b[name]]
    assert differing == []
    assert preset.verify(a) == preset.verify(b)


def _next_second():
    """Let the clock pass a whole second, the resolution of HDF5 object timestamps."""
    time.sleep(1.1)


@pytest.mark.parametrize(
    "make, shard",
    [(make_gpt2, SHARDED), (make_bert, DEFAULT_MAX_SHARD_SIZE_GB)],
    ids=["gpt2-sharded", "bert"],
)
def test_two_conversions_in_other_directories_processes_and_seconds_are_identical(tmp_path, monkeypatch, make, shard):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    source = make(tmp_path / "hf", tokenizer=True)  # tokenizer rebuilt from vocab files: re-serialized
    here = tmp_path / "here" / "preset"
    convert(source, here, max_shard_size_gb=shard)
    _next_second()
    # Another process (its own hash seed, working directory and allocations), another path.
    elsewhere = tmp_path / "somewhere" / "else" / "entirely"
    elsewhere.mkdir(parents=True)
    env = {**os.environ, "PYTHONHASHSEED": "4242"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(presetforge.__file__).parents[1]), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", _CONVERT, str(source), "converted", str(shard)],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    if shard == SHARDED:
        assert (here / preset.SHARDED_WEIGHTS_FILE).is_file()
    assert (here / "assets" / "tokenizer" / "tokenizer.json").is_file()
    _assert_same_bytes(here, elsewhere / "converted")
    metadata = preset.read_json(here, preset.METADATA_FILE)
    assert metadata["date"] is None
    assert str(tmp_path) not in json.dumps(metadata)
    assert "transformers_version" not in metadata  # the installed one: conversion never uses it


def test_saving_a_loaded_backbone_twice_gives_the_same_bytes(tmp_path, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    convert(make_gpt2(tmp_path / "hf"), tmp_path / "converted")
    backbone = Backbone.from_preset(tmp_path / "converted")
    backbone.save_to_preset(tmp_path / "first")
    _next_second()
    backbone.save_to_preset(tmp_path / "second" / "deeper")
    _assert_same_bytes(tmp_path / "first", tmp_path / "second" / "deeper")


def test_a_process_wide_h5py_setting_does_not_change_the_bytes(tmp_path, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    source = make_gpt2(tmp_path / "hf")
    convert(source, tmp_path / "plain")
    Backbone.from_preset(tmp_path / "plain").save_to_preset(tmp_path / "plain_saved")
    monkeypatch.setattr(h5py.get_config(), "track_order", True)  # a user's code may set it
    convert(source, tmp_path / "tracked")
    Backbone.from_preset(tmp_path / "plain").save_to_preset(tmp_path / "tracked_saved")
    assert h5py.get_config().track_order is True  # left as the user set it
    _assert_same_bytes(tmp_path / "plain", tmp_path / "tracked")
    _assert_same_bytes(tmp_path / "plain_saved", tmp_path / "tracked_saved")


def test_source_date_epoch_dates_the_preset_the_same_every_time(tmp_path, monkeypatch):
    source = make_gpt2(tmp_path / "hf")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    convert(source, tmp_path / "a")
    _next_second()
    convert(source, tmp_path / "b")
    assert preset.read_json(tmp_path / "a", preset.METADATA_FILE)["date"] == "2023-11-14T22:13:20+00:00"
    _assert_same_bytes(tmp_path / "a", tmp_path / "b")

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(PresetError, match="SOURCE_DATE_EPOCH must be an integer number of seconds, got 'yesterday'"):
        convert(source, tmp_path / "c")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "hf"]
