"""The demo page in headless Chromium (playwright): the bundled example gives an overlay and a sphere view."""

from __future__ import annotations

import os
import shutil

import pytest

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("HEAL_SWIN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def playwright_or_skip():
    """playwright's sync API, or a skip naming what is missing (Chromium or playwright); CI turns skips into failures."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install -y chromium)")
    return pytest.importorskip(
        "playwright.sync_api", reason="playwright not installed (pip install -e '.[dev]')"
    )


@pytest.fixture(scope="module")
def browser():
    sync_api = playwright_or_skip()
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def test_demo_page_example(browser, server):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server + "/")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('Ready')", timeout=20000)
    assert page.locator("#seg-model option").count() >= 2
    page.click("#example")
    page.wait_for_function("document.body.dataset.done !== undefined", timeout=30000)
    assert page.evaluate("document.body.dataset.done") == "1", page.inner_text("#status")
    sizes = page.evaluate(
        "['input-view', 'overlay', 'sphere', 'depth'].map(id => [document.getElementById(id).naturalWidth, document.getElementById(id).naturalHeight])"
    )
    assert sizes[0] == [384, 290] and sizes[1] == [384, 290]  # the overlay is on the fisheye image
    assert sizes[2][0] == 512 and sizes[2][1] > 200  # Mollweide sphere view
    assert sizes[3] == [384, 290]
    assert page.locator("#legend span").count() == 10
    assert not errors, errors
    page.close()


def test_demo_page_reports_errors(browser, server, tmp_path):
    page = browser.new_page()
    page.goto(server + "/")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('Ready')", timeout=20000)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    page.set_input_files("#image", str(bad))
    page.select_option("#camera", "front")
    page.click("#run")
    page.wait_for_function("document.body.dataset.done !== undefined", timeout=20000)
    status = page.inner_text("#status")
    assert "415" in status and "PNG or JPEG" in status
    page.close()
