"""Browser fixtures: a real uvicorn server against the test database, Redis and Chroma
folder, and headless Chromium (its console log kept, for the tests that read it)."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.support import free_port, run_database_url

ROOT = Path(__file__).resolve().parents[2]


def _browser_tools():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        if os.environ.get("CONCIERGE_REQUIRE_BROWSER"):
            pytest.fail("chromium and chromedriver are required (Debian packages chromium, chromium-driver)")
        pytest.skip("chromium/chromedriver not installed")
    return chromium, driver


@pytest.fixture
def site(trained_org, supervisor, tmp_path):
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip("the browser test shares PostgreSQL and Redis with a server process")
    env = {
        **os.environ,
        "DATABASE_URL": run_database_url(),
        "PYTHONUNBUFFERED": "1",
    }
    port = free_port()
    log_path = tmp_path / "server.log"
    log = log_path.open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=15)
    log.close()
    print(log_path.read_text()[-3000:])  # shown by pytest when the test fails


def _driver(profile):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = _browser_tools()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_window_size(1280, 900)
    return driver


@pytest.fixture
def browser(tmp_path):
    driver = _driver(tmp_path / "chromium")
    yield driver
    driver.quit()


@pytest.fixture
def another_browser(tmp_path):
    """Makes more browsers, each a person of its own (own profile and cookies)."""
    drivers = []

    def make():
        drivers.append(_driver(tmp_path / f"chromium-{len(drivers) + 2}"))
        return drivers[-1]

    yield make
    for driver in drivers:
        driver.quit()
