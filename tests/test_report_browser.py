"""The demo's report.html in a real browser: headless Chromium (Debian's, driven by playwright).

It must render with no console errors and no request beyond the file itself, draw every chart, give
every KPI on the scorecard its chart (or the reason it has none), and read in a narrow window. The
screenshots go to ``$KPIHUB_TEST_ARTIFACTS`` (``.ci/run`` sets it) or the test's temporary directory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.test_demo import demo  # noqa: F401  (the session fixture: kpihub demo run once)

# Read at import: the autouse fixture clears KPIHUB_* variables before each test.
ARTIFACTS = os.environ.get("KPIHUB_TEST_ARTIFACTS")
REQUIRE_BROWSER = bool(os.environ.get("KPIHUB_REQUIRE_BROWSER"))


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if REQUIRE_BROWSER:
            pytest.fail("chromium is not installed, and KPIHUB_REQUIRE_BROWSER is set (.ci/run installs it)")
        pytest.skip("chromium is not installed (.ci/run installs Debian's package)")
    return path


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = _chromium()
    with sync_api.sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        chromium = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _open(browser, path: Path, width: int):
    page = browser.new_page(viewport={"width": width, "height": 900})
    problems: list[str] = []
    noisy = ("error", "warning")
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in noisy else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("request", lambda r: None if r.url.startswith(("file:", "data:", "blob:")) else problems.append(r.url))
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-charts]", timeout=60_000)
    return page, problems


def _artifacts(tmp_path: Path) -> Path:
    where = Path(ARTIFACTS or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    return where


def test_demo_report_renders_every_chart_with_no_errors_and_no_network(demo, browser, tmp_path):  # noqa: F811
    report = demo[0] / "kpihub-demo" / "report.html"
    assert report.is_file() and str(report) in demo[1].output.replace("\n", "")
    page, problems = _open(browser, report, 1280)
    assert problems == []
    drawn, total = map(int, page.get_attribute("body", "data-charts").split("/"))
    assert drawn == total == page.locator("[data-chart]").count() and total > 60
    # Every chart place holds an SVG with marks in it (not an empty frame).
    empty = page.evaluate(
        "Array.from(document.querySelectorAll('[data-chart]'))"
        ".filter(el => !el.querySelector('svg .mark-line, svg .mark-rect, svg .mark-symbol, svg .mark-text'))"
        ".map(el => el.dataset.chart)"
    )
    assert empty == []
    # Every KPI on the scorecard has its card, with a drawn chart or the reason it has none.
    rows = page.eval_on_selector_all("tr[id^='row-']", "rs => rs.map(r => r.id.slice(4))")
    assert len(rows) > 40
    for key in rows:
        card = page.locator(f"article[id='kpi-{key}']")
        assert card.count() == 1, key
        assert card.locator("svg").count() > 0 or "No chart:" in card.inner_text(), key
    statuses = set(page.eval_on_selector_all("#scorecard .status", "s => s.map(x => x.textContent.trim())"))
    assert {"✓ on track", "✗ off track", "! at risk"} <= statuses
    out = _artifacts(tmp_path)
    page.screenshot(path=str(out / "report.png"))
    page.locator("#charts").screenshot(path=str(out / "report-charts.png"))


def test_demo_report_reads_in_a_narrow_window(demo, browser, tmp_path):  # noqa: F811
    report = demo[0] / "kpihub-demo" / "report.html"
    page, problems = _open(browser, report, 400)
    assert problems == []
    # The page does not scroll sideways; the scorecard keeps KPI, actual (with its trend) and status.
    assert page.evaluate("document.documentElement.scrollWidth") <= 400
    table = page.locator("#scorecard table")
    assert table.evaluate("t => t.getBoundingClientRect().right") <= 400
    visible = page.eval_on_selector_all(
        "#scorecard thead th", "ths => ths.filter(t => t.offsetParent !== null).map(t => t.textContent.trim())"
    )
    assert visible == ["KPI", "Actual", "Status"]
    assert page.locator("#scorecard .narrow-only .trend").first.is_visible()
    page.screenshot(path=str(_artifacts(tmp_path) / "report-narrow.png"))
