"""The dashboard in a real headless browser: Debian's chromium driven by Playwright for Python.

The rendered table is read back, the failed preset must be marked (class, colour, icon and
word) and sorted first, the page must fit a phone as cards, and nothing may be fetched but the
site's own files. Screenshots go to tests-artifacts/ (git-ignored) for a person to look at.
Skipped only where the browser is absent locally; on CI (``CI`` set) its absence is a failure,
since .ci/run installs it (scripts/install_browser.sh).
"""

import os
import shutil
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "tests-artifacts"
RED, PALE_RED, CLEAR = "rgb(200, 30, 30)", "rgb(253, 232, 232)", "rgba(0, 0, 0, 0)"


def _chromium():
    """``(path of the system chromium, None)``, or ``(None, what is missing)``."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return None, "Playwright for Python is not installed (pip install -e '.[dev]')"
    executable = os.environ.get("PRESETFORGE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        return None, "no chromium on PATH (bash scripts/install_browser.sh installs Debian's)"
    return executable, None


EXECUTABLE, MISSING = _chromium()
if MISSING and not os.environ.get("CI"):
    pytest.skip(MISSING, allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    if MISSING:
        pytest.fail(f"CI runs the browser test, but {MISSING}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=EXECUTABLE)
        yield browser
        browser.close()


def _open(browser, site, width, height):
    page = browser.new_page(viewport={"width": width, "height": height})
    fetched = []
    page.on("request", lambda request: fetched.append(request.url))
    page.goto((site / "index.html").as_uri())
    return page, fetched


def _style(locator, prop, pseudo=None):
    """The computed value of a CSS property of the element (or its ``pseudo`` element)."""
    return locator.evaluate("(e, [p, pseudo]) => getComputedStyle(e, pseudo).getPropertyValue(p)", [prop, pseudo])


def test_the_failed_preset_is_marked_at_a_glance(nights, browser):
    page, fetched = _open(browser, nights.site, 1280, 800)
    rows = page.locator("#presets tbody tr")
    cells = [rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count())]
    assert [c[1].splitlines()[0] for c in cells] == ["bert_tiny_en_uncased", "llama2_7b_en", "gpt2_base_en"]
    assert [c[0].strip() for c in cells] == ["\u2716 FAILED", "\u26a0 DRIFT", "\u2714 passed"]
    assert "differs at index (0, 0)" in cells[0][1] and "has moved" in cells[1][1]

    failed, passed = rows.nth(0), rows.nth(2)
    assert failed.get_attribute("class") == "status-fail"
    assert _style(failed, "background-color") == PALE_RED and _style(passed, "background-color") == CLEAR
    assert _style(failed.locator(".badge"), "background-color") == RED
    assert _style(failed.locator("td").first, "box-shadow").startswith(RED)  # the red bar down its edge
    assert "1 failed" in page.locator("#verdict").inner_text() and _style(page.locator("#verdict"), "background-color") == RED
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280  # no sideways scrolling

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    failed.locator("a").click()  # the preset's page, with its per-layer plot
    assert page.url.endswith("/presets/bert_tiny_en_uncased.html")
    assert "FAILED" in page.locator("h1").inner_text()
    assert page.locator("img").evaluate("img => img.complete && img.naturalWidth") > 0
    assert all(url.startswith(nights.site.as_uri()) for url in fetched), fetched


def test_on_a_phone_rows_become_cards_and_the_failure_still_stands_out(nights, browser):
    page, fetched = _open(browser, nights.site, 390, 844)
    assert _style(page.locator("#presets thead"), "display") == "none"
    failed = page.locator("#presets tbody tr").first
    assert _style(failed, "display") == "block" and _style(failed, "border-left-width") == "8px"
    assert _style(failed, "border-left-color") == RED and _style(failed, "background-color") == PALE_RED
    assert _style(failed.locator("td").first, "content", pseudo="::before") == '"Status"'  # cells labelled
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
    assert all(url.startswith(nights.site.as_uri()) for url in fetched), fetched
