"""A real browser: headless Chromium opens the demo site, chats through the widget, gets a
cited answer, asks for a human, and sees a reply written in the staff admin arrive.

The site runs in a real uvicorn process against the test database, Redis and Chroma folder."""

import pytest

from tests.support import widget_ask
from tickets.models import Ticket

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_widget_chat_citation_handoff_and_agent_reply(site, browser, supervisor):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec

    wait, box, answer = widget_ask(browser, site + "/", "when will I get my refund?")
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
    assert agent.find_element(By.CSS_SELECTOR, "p").text == "Hi, Sam here. Your refund went out today."
    # The customer sees who answers: the staff member's first name, else their username.
    assert agent.find_element(By.CSS_SELECTOR, ".cc-author").text == (supervisor.first_name or supervisor.username)
