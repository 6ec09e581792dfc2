"""Hostile handles and targets: refused in one line before any hub hears of them; message text is never markup.

Every spelling is covered one by one in tests/registry/test_handles.py; these
rows take a representative of each kind through the CLI's three doors
(converting from ``hf://``, loading, publishing ``--to``).
"""

import shutil

import pytest

from presetforge import Backbone, HandleError
from tests.faults.conftest import assert_one_clear_line, cli, tree
from tests.faults.table import Fault
from tests.verified import verified_preset

AREA = "handles"
GOOD_TARGETS = ["hf://standin/fine", "kaggle://standin/fine/keras/base"]

FAULTS = (
    Fault("hf-dot-dot", AREA, "`hf://../x`: a path step where a repo id belongs", "exit 2 naming the part",
          r"malformed Hugging Face handle 'hf://\.\./x': the org '\.\.' contains '\.\.'"),
    Fault("hf-revision-dot-dot", AREA, "a revision with `..` (`hf://org/repo@refs/../main`)",
          "exit 2 naming the revision", r"the revision 'refs/\.\./main' contains '\.\.'"),
    Fault("look-alike-slash", AREA, "a Unicode slash look-alike in a repo id (`hf://org∕repo`)", "exit 2",
          r"malformed Hugging Face handle"),
    Fault("nul-byte", AREA, "a NUL or control character in a handle", "exit 2", r"malformed Hugging Face handle"),
    Fault("kaggle-dot-dot", AREA, "`..` as a Kaggle variation", "exit 2 naming the part",
          r"malformed Kaggle handle .*the variation '\.\.' contains '\.\.'"),
    Fault("kaggle-version-zero", AREA, "Kaggle version `0` (which the client reads as 'latest')",
          "exit 2: versions count from 1", r"the version '0' is not a whole number from 1 up"),
    Fault("remote-file-uri", AREA, "`file://host/path` (a remote host)", "exit 2: only local files",
          r"file://"),
    Fault("bad-last-target", AREA, "`publish --to A --to B --to <malformed>`",
          "exit 2 before any upload: every target is checked first", r"malformed Kaggle handle"),
    Fault("markup-in-message", AREA, "an error text holding `[/version]`-like brackets",
          "printed as text, one line (never read as console markup)", r"\[/version\]"),
)

HANDLES = {
    "hf-dot-dot": "hf://../x",
    "hf-revision-dot-dot": "hf://org/repo@refs/../main",
    "look-alike-slash": "hf://org\u2215repo",
    "nul-byte": "hf://org/re\x00po",
    "kaggle-dot-dot": "kaggle://owner/model/keras/..",
    "kaggle-version-zero": "kaggle://owner/model/keras/variation/0",
    "remote-file-uri": "file://elsewhere/registry",
    "markup-in-message": "kaggle://owner/model",
}


@pytest.fixture(scope="module")
def verified(tmp_path_factory):
    return verified_preset(tmp_path_factory.mktemp("verified"))[1]


@pytest.mark.parametrize("fault", [f for f in FAULTS if f.id in HANDLES], ids=lambda f: f.id)
def test_hostile_handle(fault, verified, tmp_path, no_network):
    handle = HANDLES[fault.id]
    if handle.startswith("hf://"):
        assert_one_clear_line(cli("convert", handle, "-o", tmp_path / "out"), fault.message)
        assert not (tmp_path / "out").exists()
    with pytest.raises(HandleError):
        Backbone.from_preset(handle)
    copy = shutil.copytree(verified, tmp_path / "preset")
    before = tree(copy)
    assert_one_clear_line(cli("publish", copy, "--to", handle), fault.message)
    assert tree(copy) == before


def test_bad_last_target(verified, tmp_path, no_network):
    fault = next(f for f in FAULTS if f.id == "bad-last-target")
    copy = shutil.copytree(verified, tmp_path / "preset")
    targets = [*GOOD_TARGETS, "kaggle://owner/model/keras/variation/0"]
    assert_one_clear_line(cli("publish", copy, *(a for t in targets for a in ("--to", t))), fault.message)


def test_debug_shows_the_traceback(no_network):
    quiet = cli("convert", HANDLES["hf-dot-dot"], "-o", "unused")
    loud = cli("--debug", "convert", HANDLES["hf-dot-dot"], "-o", "unused")
    assert "Traceback" not in quiet.stderr and loud.exit_code == quiet.exit_code == 2
    assert "Traceback" in loud.stderr and "HandleError" in loud.stderr
    assert loud.stderr.rstrip().splitlines()[-1] == quiet.stderr.strip()
