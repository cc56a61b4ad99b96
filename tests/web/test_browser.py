"""The live page in a real browser: Debian's headless Chromium driven by Selenium (chromium-driver).

Loads the page, finds the `peaches` endpoint with its value, logs in, sets it from the form and
sees the new value arrive over the event stream without a reload; then sees a value set by another
client (not the page) arrive too. Screenshots go to build/screenshots/ (or $DRIPLINE_SCREENSHOT_DIR;
the pictures in docs/screenshots/ are made with DRIPLINE_SCREENSHOT_DIR=docs/screenshots).

Needs the Debian packages ``chromium`` and ``chromium-driver`` (.ci/run installs them); the test
fails, never skips, when they are missing.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from .conftest import PASSWORD

SCREENSHOTS = Path(os.environ.get("DRIPLINE_SCREENSHOT_DIR")
                   or Path(__file__).resolve().parents[2] / "build" / "screenshots")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture
def browser():
    os.environ.setdefault("SE_AVOID_STATS", "true")  # Selenium must not phone home
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as ChromeService
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            pytest.fail(f"{path} is missing: apt-get install -y chromium chromium-driver")
    profile = tempfile.mkdtemp(prefix="dl-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--disable-dev-shm-usage", "--window-size=1360,760", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=ChromeService(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _value_text(driver, endpoint: str) -> str:
    cells = driver.find_elements("css selector", f'tr[data-endpoint="{endpoint}"] .value')
    return cells[0].text if cells else ""


def test_live_page_shows_sets_and_follows_peaches(browser, gateway, mesh_service):
    from selenium.webdriver.support.ui import WebDriverWait

    from dripline.core import Interface
    from dripline.testing import test_mesh

    peaches = mesh_service.peaches
    with Interface(dripline_mesh=test_mesh()) as dl:
        dl.set(peaches, 1.5)                      # value_cal 3
    wait = WebDriverWait(browser, 45, poll_frequency=0.2)
    browser.get(gateway.origin + "/")
    wait.until(lambda d: _value_text(d, peaches) == "3")
    row = browser.find_element("css selector", f'tr[data-endpoint="{peaches}"]')
    assert "peaches in the fridge" in row.text and "kg" in row.text
    card = browser.find_element("css selector", f'article.service[data-service="{mesh_service.service}"]')
    wait.until(lambda d: card.get_attribute("data-state") == "alive")
    browser.execute_script("window.__noReload = 42;")

    # alerts and status messages appear in the stream
    text = f"{mesh_service.service}: pump pressure high"
    with Interface(dripline_mesh=test_mesh()) as dl:
        dl.send_alert(f"status_message.{mesh_service.service}.warning", text)
    wait.until(lambda d: any(text in li.text for li in d.find_elements("css selector", "#alerts li.status")))
    assert browser.find_elements("css selector", "#alerts li.sev-warning")
    browser.execute_script("window.scrollTo(0, 0);")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "live-page.png"))

    # log in through the dialog
    browser.find_element("id", "login-button").click()
    browser.find_element("id", "login-user").send_keys("alice")
    browser.find_element("id", "login-password").send_keys(PASSWORD)
    browser.find_element("id", "login-submit").click()
    wait.until(lambda d: d.find_element("id", "user-name").text == "alice")

    # set from the form; the new value arrives on the event stream
    box = row.find_element("css selector", "form.set input")
    box.send_keys("2.25")
    row.find_element("css selector", "form.set button").click()
    wait.until(lambda d: _value_text(d, peaches) == "4.5")
    assert browser.execute_script("return window.__noReload") == 42

    # a value set by another client arrives too, with no action on the page
    with Interface(dripline_mesh=test_mesh()) as dl:
        dl.set(peaches, 3.25)
    wait.until(lambda d: _value_text(d, peaches) == "6.5")
    assert browser.execute_script("return window.__noReload") == 42
    plot = row.find_elements("css selector", "svg.spark polyline")
    assert plot and len(plot[0].get_attribute("points").split()) >= 2  # logged values are plotted
    # the filter narrows the page to one service
    browser.find_element("id", "filter").send_keys(mesh_service.service)
    wait.until(lambda d: all(not c.is_displayed() or c.get_attribute("data-service") == mesh_service.service
                             for c in d.find_elements("css selector", "article.service")))
    browser.execute_script("window.scrollTo(0, 0);")
    browser.save_screenshot(str(SCREENSHOTS / "live-page-after-set.png"))

    severe = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert not severe, severe
