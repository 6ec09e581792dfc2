"""README sections generated from the code, between ``<!-- name:start -->`` and ``<!-- name:end -->``."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def markers(name):
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def with_section(text, name, body):
    """``text`` with section ``name`` replaced by ``body``; a README without the section is an error."""
    start, end = markers(name)
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"README has no {start} … {end} section")
    return pattern.sub(lambda _: f"{start}\n{body}\n{end}", text)


def main(name, render, argv):
    """``--write PATH`` rewrites the section in PATH; otherwise print the section's body."""
    if argv[:1] == ["--write"]:
        path = Path(argv[1])
        path.write_text(with_section(path.read_text(encoding="utf-8"), name, render()), encoding="utf-8")
    else:
        print(render())


def is_current(name, render):
    """Whether the README's section ``name`` is exactly what ``render`` makes now."""
    text = README.read_text(encoding="utf-8")
    return with_section(text, name, render()) == text
