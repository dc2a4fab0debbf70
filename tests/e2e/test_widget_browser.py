"""A real browser: headless Chromium opens the demo site, chats through the widget, gets a
cited answer, asks for a human, and sees a reply written in the staff admin arrive.

The site runs in a real uvicorn process against the test database, Redis and Chroma folder."""

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
from tickets.models import Ticket

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


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


@pytest.fixture
def browser(tmp_path):
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
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_window_size(1280, 900)
    yield driver
    driver.quit()


def test_widget_chat_citation_handoff_and_agent_reply(site, browser, supervisor):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    browser.get(site + "/")
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".cc-launch"))).click()
    box = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".cc-form textarea")))
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".cc-status"), "Online"))

    box.send_keys("when will I get my refund?", Keys.ENTER)
    answer = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".cc-bot")))
    assert "business days" in answer.text
    link = answer.find_element(By.CSS_SELECTOR, ".cc-sources a")
    assert link.text == "Returns and refunds" and link.get_attribute("href").endswith("/returns-and-refunds")

    # Markup typed by a customer is shown as text, never run as HTML.
    box.send_keys("<b id='injected'>bold</b>", Keys.ENTER)
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".cc-log"), "<b id='injected'>bold</b>"))
    assert browser.find_elements(By.ID, "injected") == []

    box.send_keys("I want to talk to a human", Keys.ENTER)
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".cc-log"), "talking with our support team"))
    ticket = Ticket.objects.get(organization=supervisor.staff_profile.organization)

    # A supervisor answers from the admin, in another tab of the same browser.
    widget_tab = browser.current_window_handle
    browser.switch_to.new_window("tab")
    browser.get(site + "/admin/login/")
    browser.find_element(By.NAME, "username").send_keys(supervisor.username)
    browser.find_element(By.NAME, "password").send_keys("correct horse battery", Keys.ENTER)
    wait.until(ec.presence_of_element_located((By.ID, "user-tools")))  # signed in before moving on
    browser.get(f"{site}/admin/tickets/ticket/{ticket.pk}/change/")
    reply = wait.until(ec.visibility_of_element_located((By.ID, "reply-text")))
    reply.send_keys("Hi, Sam here. Your refund went out today.")
    browser.find_element(By.CSS_SELECTOR, "#reply-form input[type=submit]").click()
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".messagelist"), "Reply sent"))

    browser.switch_to.window(widget_tab)
    agent = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".cc-agent")))
    assert agent.text == "Hi, Sam here. Your refund went out today."
