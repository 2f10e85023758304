"""The pages in a real browser: headless Chromium (Debian's `chromium`, which .ci/run installs) driven by
Playwright, against the real HTTP server on 127.0.0.1 serving a stored record. No console error; the tables and
the SVG charts are there; a filter changes the rows; the CSV link downloads the matching rows; each page fits a
390 px wide phone without scrolling sideways."""
from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest
from flask import Flask

from src.database.records import RecordStore
from src.monitoring.app import HealthServer
from src.web.pages import create_pages
from tests.stored_site import SITE

CHROMIUM = Path("/usr/bin/chromium")
PAGES = ("/", "/record", "/forecasts", "/models")


@pytest.fixture
def served(site_db):
    app = Flask("test_browser")
    app.register_blueprint(create_pages(RecordStore(site_db), SITE, lambda: ({"problems": []}, True)))
    server = HealthServer(app, "127.0.0.1", 0)
    server.start()
    yield f"http://127.0.0.1:{server.port}", RecordStore(site_db)
    server.stop()


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        pytest.fail("no /usr/bin/chromium: install Debian's chromium package (apt-get install chromium); "
                    ".ci/run does")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _open(browser, width: int, downloads: bool = False):
    page = browser.new_page(viewport={"width": width, "height": 900}, accept_downloads=downloads)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("response", lambda answer: errors.append(f"{answer.status} {answer.url}") if answer.status >= 400
            else None)
    return page, errors


@pytest.mark.parametrize("width", [1280, 390], ids=["desktop", "phone"])
def test_each_page_loads_clean_and_fits_the_screen(served, browser, width, tmp_path):
    base, _ = served
    page, errors = _open(browser, width)
    for path in PAGES:
        page.goto(base + path)
        assert page.locator("main h1").count() == 1
        scroll, view = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll <= view, f"{path} scrolls sideways at {width} px ({scroll} > {view})"
        page.screenshot(path=str(tmp_path / f"{width}{path.replace('/', '_')}.png"), full_page=True)
    assert errors == []
    page.goto(base + "/")
    assert page.locator("section.card").count() == 9
    page.goto(base + "/record")
    assert page.locator("table.record tbody tr").count() == 2 * 9  # live and backtest per group and all together
    charts = page.locator("svg.chart")
    assert charts.count() == 6 and charts.first.bounding_box()["width"] <= width
    assert page.locator("svg.chart circle").count() > 5  # reliability points drawn
    page.goto(base + "/forecasts")
    assert page.locator("table.forecasts tbody tr").count() == 100


def test_a_filter_changes_the_rows_and_the_csv_link_downloads_them(served, browser):
    base, records = served
    page, errors = _open(browser, 1280, downloads=True)
    page.goto(base + "/forecasts")
    assert set(page.locator("table.forecasts tbody td:nth-child(2)").all_inner_texts()) == {"BTC", "ETH", "SOL"}
    page.select_option("select[name=asset]", "ETH")
    page.select_option("select[name=status]", "up")
    page.click("form.filters button")
    page.wait_for_url("**asset=ETH**")
    assert set(page.locator("table.forecasts tbody td:nth-child(2)").all_inner_texts()) == {"ETH"}
    assert set(page.locator("table.forecasts tbody td:nth-child(6)").all_inner_texts()) == {"up"}
    with page.expect_download() as caught:
        page.click("text=CSV of every matching forecast")
    rows = list(csv.DictReader(io.StringIO(Path(caught.value.path()).read_text())))
    with records.db.engine.connect() as conn:
        expected = conn.exec_driver_sql("""SELECT count(*) FROM predictions p JOIN prediction_outcomes o
            ON o.prediction_id = p.id WHERE p.run_type = 'live' AND p.is_champion AND p.symbol = 'ETH/USDT'
            AND o.status = 'up'""").scalar()
    assert len(rows) == expected and {(r["symbol"], r["status"]) for r in rows} == {("ETH/USDT", "up")}
    page.goto(base + "/record")
    page.select_option("select[name=asset]", "SOL")
    page.click("form.filters button")
    page.wait_for_url("**asset=SOL**")
    assert "reliability (live, SOL)" in page.locator("svg.chart").first.inner_html()
    assert page.locator("table.record tbody tr").count() == 2 * 3  # SOL 1 %, 2 % and all together
    assert errors == []


def test_chromium_is_the_systems(browser):
    """The driver runs Debian's browser (nothing was downloaded): its version is the package's."""
    assert browser.version and shutil.which("chromium") == str(CHROMIUM)
