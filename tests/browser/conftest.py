"""A real headless browser for the browser tests: Debian's chromium driven by Debian's chromedriver through
selenium, at phone width (390 x 844 CSS pixels). `bash scripts/browser.sh` installs both (scripts/test does);
selenium is given the driver's path, so it never downloads one (Selenium Manager stays off)."""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from waitress.server import create_server

from aftercare.inbound.web import create_app
from tests.conftest import ROOT, configure
from tests.web_helpers import WebClient

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PHONE = (390, 844)  # an iPhone 12-15's viewport, CSS pixels
SCREENSHOTS = ROOT / "screenshots"  # git-ignored; the README's "For clinic staff" section points here


@pytest.fixture(scope="session")
def _chromium() -> Iterator[webdriver.Chrome]:
    """One headless chromium for the whole run (a start costs about a second); tests get it with cookies cleared."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).is_file()]
    if missing:
        # A failure, not a skip: CI installs the browser, so a missing one means the install step broke.
        pytest.fail(f"browser tests need Debian's chromium and chromium-driver ({', '.join(missing)} missing); "
                    "install them with: bash scripts/browser.sh", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={PHONE[0]},{PHONE[1]}", "--hide-scrollbars", "--no-first-run",
                     "--disable-extensions"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    # Desktop chromium keeps a window at least 500 px wide whatever --window-size says: emulate the phone's
    # screen as DevTools' device mode does (a mobile viewport that honours <meta name="viewport">).
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 1, "mobile": True})
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(_chromium: webdriver.Chrome) -> webdriver.Chrome:
    """The browser with no cookies from an earlier test (each test signs in, or not, for itself)."""
    _chromium.execute_cdp_cmd("Network.clearBrowserCookies", {})
    _chromium.get("about:blank")
    return _chromium


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    """Save the whole page as it is now (all of its height, at the phone's width) to screenshots/<name>."""
    SCREENSHOTS.mkdir(exist_ok=True)
    height = driver.execute_script("return Math.ceil(document.documentElement.scrollHeight)")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": PHONE[0], "height": max(height, PHONE[1]), "scale": 1}})
    path = SCREENSHOTS / name
    path.write_bytes(base64.b64decode(shot["data"]))
    return path




@contextmanager
def serve_at_public_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebClient]:
    """The real web app over HTTP on loopback, with AFTERCARE_PUBLIC_URL set to the address it really answers on,
    so the links the app writes (the page SMS's /e/ link, the photos' /media/ links) open in the browser exactly as
    sent. Webhooks must then be signed for that address: `client.signed_post(path, params, url=client.base + path)`.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))  # the port is known before the app and its settings are made
    base = f"http://127.0.0.1:{listener.getsockname()[1]}"
    configure(monkeypatch, public_url=base)
    server = create_server(create_app(), sockets=[listener], threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield WebClient(base=base)
    finally:
        server.close()
