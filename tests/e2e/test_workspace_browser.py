"""The agent's workspace in headless Chromium: the ticket page at 1024, 1440 and 1920 px with
nothing wider than the window; a customer's message arriving live; two agents on one ticket
seeing each other; a suggested reply and a macro inserted and sent, reaching the customer's
widget; a mention notifying the colleague; the inbox counts moving as tickets change.

A customer chats in the demo site's widget (one browser), two agents work in admin (two more)."""

import os

import pytest

from tenancy.models import StaffRole
from tests.support import widget_ask
from tests.tenancy.factories import StaffFactory
from tests.tickets.factories import TicketFactory
from tickets.models import ReplySuggestion, Ticket

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WIDTHS = (1024, 1440, 1920)

OVERFLOW = """
const width = document.documentElement.clientWidth;
const strict = arguments[0];
function clipped(node) {  // inside a box that scrolls or clips, itself within the window
  if (strict) { return false; }
  for (let up = node.parentElement; up && up !== document.body; up = up.parentElement) {
    if (getComputedStyle(up).overflowX !== 'visible' && up.getBoundingClientRect().right <= width + 1) { return true; }
  }
  return false;
}
const wide = [...document.querySelectorAll('body *')].filter(node => {
  const box = node.getBoundingClientRect();
  return box.width > 0 && box.height > 0 && box.right > width + 1 && !clipped(node);
}).map(node => node.tagName.toLowerCase() + (node.id ? '#' + node.id : '') + '.' + String(node.className).slice(0, 40));
return {scroll: document.documentElement.scrollWidth, width: width, wide: wide.slice(0, 10)};
"""


def sign_in(driver, site, user):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 30)
    driver.get(site + "/admin/login/")
    driver.find_element(By.NAME, "username").send_keys(user.username)
    driver.find_element(By.NAME, "password").send_keys("correct horse battery", Keys.ENTER)
    wait.until(ec.presence_of_element_located((By.ID, "user-tools")))
    return wait


def open_ticket(driver, wait, site, ticket):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    driver.get(f"{site}/admin/tickets/ticket/{ticket.pk}/change/")
    wait.until(ec.text_to_be_present_in_element((By.ID, "cc-connection"), "live"))


def test_the_workspace_live_with_two_agents_and_a_customer(
    site, browser, another_browser, supervisor, trained_org, tmp_path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select

    from tickets import services

    bob = StaffFactory(organization=trained_org, username="bob", role=StaffRole.AGENT)
    services.macro_create(organization=trained_org, name="Apology", reply="Sorry for the wait, {customer_name}.")
    # The customer asks, then asks for a person: a ticket.
    customer_wait, box, _answer = widget_ask(browser, site + "/", "when will I get my refund?")
    box.send_keys("I want to talk to a human", Keys.ENTER)
    customer_wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".cc-log"), "talking with our support team"))
    ticket = Ticket.objects.get(organization=trained_org)

    alice = another_browser()
    wait = sign_in(alice, site, supervisor)
    open_ticket(alice, wait, site, ticket)
    shots = os.environ.get("CONCIERGE_SCREENSHOT_DIR") or str(tmp_path)
    for width in WIDTHS:
        alice.set_window_size(width, 1000)
        measured = alice.execute_script(OVERFLOW, True)
        alice.save_screenshot(os.path.join(shots, f"ticket-page-{width}.png"))
        assert measured["wide"] == [] and measured["scroll"] <= measured["width"], (width, measured)
        main = alice.find_element(By.CSS_SELECTOR, ".cc-main").rect
        side = alice.find_element(By.CSS_SELECTOR, ".cc-side").rect
        if width >= 1440:  # side by side: the conversation is the wide column, on the left
            assert main["x"] < side["x"] and main["width"] > side["width"] and main["width"] >= 600
        else:  # stacked below the conversation
            assert side["y"] > main["y"]
    summary = alice.find_element(By.CSS_SELECTOR, ".cc-summary").text
    assert "when will I get my refund?" in summary and "Returns and refunds" in summary

    # The customer writes: it appears on the open ticket page without a reload.
    box.send_keys("Are you there?", Keys.ENTER)
    wait.until(ec.text_to_be_present_in_element((By.ID, "transcript"), "Are you there?"))

    # A second agent opens the ticket: each sees the other; Bob typing shows on Alice's page.
    bob_browser = another_browser()
    bob_wait = sign_in(bob_browser, site, bob)
    open_ticket(bob_browser, bob_wait, site, ticket)
    wait.until(ec.text_to_be_present_in_element((By.ID, "cc-presence"), "bob is also viewing"))
    bob_wait.until(ec.text_to_be_present_in_element((By.ID, "cc-presence"), f"{supervisor.username} is also viewing"))
    bob_browser.find_element(By.ID, "reply-text").send_keys("Let me")
    wait.until(ec.text_to_be_present_in_element((By.ID, "cc-presence"), "bob is typing a reply"))

    # Alice asks for a suggestion, inserts it and sends it with Ctrl+Enter: the widget shows it.
    alice.find_element(By.ID, "cc-suggest").click()
    wait.until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#cc-suggestion .cc-citations"), "Returns and refunds")
    )
    alice.find_element(By.ID, "cc-suggestion-insert").click()
    reply = alice.find_element(By.ID, "reply-text")
    assert "business days" in reply.get_attribute("value")
    reply.send_keys(Keys.CONTROL, Keys.ENTER)
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".messagelist"), "Reply sent"))
    customer_wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".cc-log .cc-agent"), "business days"))
    assert ReplySuggestion.objects.get(ticket=ticket).outcome == "sent"

    # A macro: chosen, previewed, inserted, sent.
    wait.until(ec.text_to_be_present_in_element((By.ID, "cc-connection"), "live"))
    Select(alice.find_element(By.ID, "cc-macro")).select_by_visible_text("Apology")
    preview = alice.find_element(By.CSS_SELECTOR, "#cc-macro-preview .cc-preview-text")
    assert preview.text == f"Sorry for the wait, {ticket.customer.name or 'there'}."
    alice.find_element(By.ID, "cc-macro-insert").click()
    alice.find_element(By.CSS_SELECTOR, "#reply-form input[type=submit]").click()
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".messagelist"), "Reply sent"))
    customer_wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".cc-log"), "Sorry for the wait"))

    # A note mentioning Bob pops up on Bob's open page.
    wait.until(ec.text_to_be_present_in_element((By.ID, "cc-connection"), "live"))
    alice.find_element(By.ID, "note-text").send_keys("@bob can you double-check the refund?")
    alice.find_element(By.CSS_SELECTOR, "#note-form input[type=submit]").click()
    bob_wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".cc-toast"), "can you double-check"))

    # The inbox: counts move as tickets change elsewhere.
    bob_browser.get(site + "/admin/tickets/ticket/")
    bob_wait.until(ec.text_to_be_present_in_element((By.ID, "cc-connection"), "live"))
    count = '[data-view="unassigned"] .cc-count'
    before = int(bob_browser.find_element(By.CSS_SELECTOR, count).text)
    TicketFactory(customer=ticket.customer, subject="A new one")
    bob_wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, count), str(before + 1)))
    bob_browser.save_screenshot(os.path.join(shots, "inbox-1280.png"))
    # The list may scroll sideways inside its own box (Django's changelist does), never the page.
    measured = bob_browser.execute_script(OVERFLOW, False)
    assert measured["wide"] == [] and measured["scroll"] <= measured["width"], measured

    # The reports page draws its charts with the vendored Chart.js, under the strict CSP.
    from django.utils import timezone

    from tickets.reports import report_store

    report = report_store(organization=trained_org, period="day", start=timezone.localdate())
    alice.get(f"{site}/admin/tickets/report/{report.pk}/change/")
    wait.until(lambda d: d.execute_script("return !!(window.Chart && Chart.getChart('cc-chart-1'))"))
    drawn = alice.execute_script(
        "return [...document.querySelectorAll('canvas[id^=cc-chart-]')].filter(c => Chart.getChart(c)).length"
    )
    assert drawn == len(alice.find_elements(By.CSS_SELECTOR, "canvas[id^=cc-chart-]")) >= 6
    hourly = alice.execute_script("return Chart.getChart('cc-chart-1').data.datasets.map(d => d.label)")
    assert "web" in hourly
    refused = [e["message"] for e in alice.get_log("browser") if "Content Security Policy" in e["message"]]
    assert refused == []
    alice.save_screenshot(os.path.join(shots, "report-1280.png"))
