"""Handles: every spelling parses to what it names; a malformed one is refused with one line naming
the bad part, before any hub hears of it."""

import urllib.parse
from pathlib import Path

import numpy as np
import pytest

from presetforge import Backbone, HandleError
from presetforge.registry import handles
from presetforge.registry.handles import BuiltinHandle, HFHandle, KaggleHandle, LocalHandle
from tests.backbones.tiny import inputs, make, outputs

SHA = "0123456789abcdef0123456789abcdef01234567"
LOOK_ALIKE_SLASHES = ["\u2215", "\u2044", "\uff0f", "\u29f8"]  # division, fraction, fullwidth, big solidus

VALID = [
    ("hf://org/repo", HFHandle("org/repo")),
    ("hf://Org-1/repo_2.v3", HFHandle("Org-1/repo_2.v3")),
    ("hf://org/repo@main", HFHandle("org/repo", "main")),
    ("hf://org/repo@v1.0.2", HFHandle("org/repo", "v1.0.2")),
    ("hf://org/repo@release/2024-01", HFHandle("org/repo", "release/2024-01")),
    ("hf://org/repo@refs/pr/12", HFHandle("org/repo", "refs/pr/12")),
    (f"hf://org/repo@{SHA}", HFHandle("org/repo", SHA)),
    ("kaggle://owner/model/keras/variation", KaggleHandle("owner", "model", "keras", "variation")),
    ("kaggle://keras/gpt2/keras/gpt2_base_en/3", KaggleHandle("keras", "gpt2", "keras", "gpt2_base_en", 3)),
    ("kaggle://keras/llama3/keras/llama3.2_1b/10", KaggleHandle("keras", "llama3", "keras", "llama3.2_1b", 10)),
    ("file:///abs/preset", LocalHandle(Path("/abs/preset"))),
    ("file:/abs/preset", LocalHandle(Path("/abs/preset"))),
    ("file://localhost/abs/preset", LocalHandle(Path("/abs/preset"))),
    ("file://LOCALHOST/abs/preset", LocalHandle(Path("/abs/preset"))),
    ("file:///abs/my%20preset%5B1%5D", LocalHandle(Path("/abs/my preset[1]"))),
    ("gpt2_base_en", BuiltinHandle("gpt2_base_en")),
]

HOSTILE = [
    # Hugging Face repo ids
    ("hf://../..", "the org '..' contains '..'"),
    ("hf://../x", "the org '..' contains '..'"),
    ("hf://org/..", "the repo name '..' contains '..'"),
    ("hf://org/a..b", "the repo name 'a..b' contains '..'"),
    ("hf://org/a--b", "the repo name 'a--b' contains '--'"),
    ("hf://org", "the repo id 'org' is not org/repo"),
    ("hf://org/repo/extra", "the repo id 'org/repo/extra' is not org/repo"),
    ("hf://", "the repo id '' has an empty part"),
    ("hf:///repo", "the repo id '/repo' has an empty part"),
    ("hf://org/", "the repo id 'org/' has an empty part"),
    ("hf://org//repo", "the repo id 'org//repo' has an empty part"),
    ("hf://-org/repo", "the org '-org' is not letters, digits"),
    ("hf://org/repo.", "the repo name 'repo.' is not letters, digits"),
    ("hf://org/repo.git", "the repo name 'repo.git' ends in '.git'"),
    ("hf://org/" + "r" * 93, "the repo id is longer than 96 characters"),
    # Hugging Face revisions
    ("hf://org/repo@", "the revision after '@' is empty"),
    ("hf://org/repo@..", "the revision '..' contains '..'"),
    ("hf://org/repo@refs/../main", "the revision 'refs/../main' contains '..'"),
    ("hf://org/repo@/main", "the revision '/main' has an empty path segment"),
    ("hf://org/repo@main/", "the revision 'main/' has an empty path segment"),
    ("hf://org/repo@refs//pr/1", "the revision 'refs//pr/1' has an empty path segment"),
    ("hf://org/repo@.hidden", "is not a branch, tag, commit sha or refs/pr/N (at '.hidden')"),
    ("hf://org/repo@main.lock", "(at 'main.lock')"),
    ("hf://org/repo@a@b", "(at 'a@b')"),
    ("hf://org/repo@main~1", "(at 'main~1')"),
    ("hf://org/repo@ma\x00in", "it contains a control character U+0000"),
    ("hf://org/re\npo", "it contains a control character U+000A"),
    ("hf://org/repo@main\x1b[2J", "it contains a control character U+001B"),
    ("hf://org/repo@ma in", "it contains a space U+0020"),
    ("hf://org\\repo", "it contains a backslash"),
    # Kaggle coordinates and versions
    ("kaggle://owner/model/keras/..", "the variation '..' contains '..'"),
    ("kaggle://owner/model/keras/a..b", "the variation 'a..b' contains '..'"),
    ("kaggle://owner/../keras/v", "the model '..' contains '..'"),
    ("kaggle://owner/model/keras/.v", "the variation '.v' is not letters, digits"),
    ("kaggle://owner/mo.del/keras/v", "the model 'mo.del' is not letters, digits"),
    ("kaggle://owner/model/keras", "it has 3 parts, not 4 or 5"),
    ("kaggle://owner/model/keras/v/1/x", "it has 6 parts, not 4 or 5"),
    ("kaggle:///model/keras/v", "the owner is empty"),
    ("kaggle://owner//keras/v", "the model is empty"),
    ("kaggle://owner/model/keras/", "the variation is empty"),
    ("kaggle://owner/model/keras/v/", "the version is empty"),
    ("kaggle://owner/model/keras/v/0", "the version '0' is not a whole number from 1 up"),
    ("kaggle://owner/model/keras/v/01", "the version '01' is not a whole number from 1 up"),
    ("kaggle://owner/model/keras/v/-1", "the version '-1' is not a whole number from 1 up"),
    ("kaggle://owner/model/keras/v/1.0", "the version '1.0' is not a whole number from 1 up"),
    ("kaggle://owner/model/keras/v\x00", "it contains a control character U+0000"),
    ("kaggle://owner/model/kerass/v", "unknown Kaggle framework 'kerass'"),
    # file: URIs and paths
    ("file://host/preset", "names the host 'host'; only local files are supported"),
    ("file://user@localhost/preset", "names the host 'user@localhost'"),
    ("file:relative/preset", "has no absolute path"),
    ("file://", "has no absolute path"),
    ("file:///a%00b", "decodes to a path with a control character U+0000"),
    ("file:///a?x=1", "has a query or fragment"),
    ("./preset\x00", "may not contain a control character U+0000"),
    ("ftp://host/preset", "unknown handle scheme"),
] + [
    (handle, f"it contains a non-ASCII character U+{ord(slash):04X}")
    for slash in LOOK_ALIKE_SLASHES
    for handle in (f"hf://org{slash}repo", f"hf://org/repo@refs{slash}pr{slash}1", f"kaggle://o/m/keras/v{slash}x")
]


@pytest.mark.parametrize("handle, expected", VALID, ids=[h for h, _ in VALID])
def test_every_spelling_parses_to_what_it_names(handle, expected):
    assert handles.parse(handle) == expected


@pytest.mark.parametrize("handle, problem", HOSTILE, ids=[ascii(h) for h, _ in HOSTILE])
def test_malformed_handles_are_refused_before_any_network_call(standin_hub, handle, problem):
    with pytest.raises(HandleError) as raised:
        Backbone.from_preset(handle)
    message = str(raised.value)
    assert problem in message
    assert message.isprintable()  # one line, no raw control characters
    assert standin_hub.log == []


def test_the_message_names_the_part_and_the_expected_form():
    with pytest.raises(HandleError) as raised:
        handles.parse("kaggle://owner/model/keras/v/0")
    assert str(raised.value) == (
        "malformed Kaggle handle 'kaggle://owner/model/keras/v/0': the version '0' is not a whole number "
        "from 1 up, without leading zeros; expected kaggle://owner/model/framework/variation[/version]"
    )
    with pytest.raises(HandleError) as raised:
        handles.parse("hf://org\u2215repo")
    assert str(raised.value) == (
        "malformed Hugging Face handle 'hf://org\\u2215repo': it contains a non-ASCII character U+2215 "
        "(DIVISION SLASH); expected hf://org/repo[@revision]"
    )


def test_a_file_uri_loads_the_preset_it_names(tmp_path):
    original = make("gpt2")
    original.save_to_preset(tmp_path / "my preset")
    uri = "file://localhost" + urllib.parse.quote(str(tmp_path / "my preset"))
    assert "%20" in uri
    x = inputs("gpt2")
    for a, b in zip(outputs(original, x), outputs(Backbone.from_preset(uri), x)):
        np.testing.assert_array_equal(a, b)
