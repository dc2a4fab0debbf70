"""The widget on a company's own website, in headless Chromium: the page is served from a second
loopback origin (another port), Concierge from the first, exactly as a customer's site would be.

An allowed website chats end to end and keeps the history across a reload and a new tab; a
website not allowed is refused with a console error and nothing stored; identify() with a good
and a forged hash; the mobile viewport; the Chinese UI."""

import html
import http.server
import threading

import pytest
from django.conf import settings
from django.db import connection
from PIL import Image

from agents.widget import identity_hash, widget_origin_add, widget_settings
from tenancy import services as tenancy
from tests.support import free_port, send_body, until, widget_ask
from tickets import services
from tickets.models import Attachment, Conversation, Customer, Message

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class _Pages(http.server.BaseHTTPRequestHandler):
    pages: dict[str, str] = {}

    def do_GET(self):
        body = self.pages.get(self.path.split("?")[0])
        if body is None:
            self.send_error(404)
            return
        send_body(self, body.encode(), "text/html; charset=utf-8")

    def log_message(self, *args):
        pass


@pytest.fixture
def company_site():
    """Another origin: a company's website on its own port."""
    port = free_port()
    pages: dict[str, str] = {}
    handler = type("Pages", (_Pages,), {"pages": pages})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}", pages
    server.shutdown()
    server.server_close()


def _page(concierge: str, key: str, extra_attrs: str = "", after: str = "") -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'><title>Shop</title></head>"
        "<body><h1>Acme shop</h1>"
        f"<script src='{concierge}/static/concierge/widget.js' data-widget-key='{html.escape(key)}'"
        f" {extra_attrs} defer></script>{after}</body></html>"
    )


def _tools():
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return By, Keys, ec, WebDriverWait


@pytest.fixture
def stack(site, trained_org):
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip("the browser test shares PostgreSQL and Redis with a server process")
    return site, trained_org


def test_an_allowed_website_chats_and_keeps_its_history(stack, company_site, browser, tmp_path):
    By, Keys, ec, _ = _tools()
    concierge, org = stack
    shop, pages = company_site
    widget_origin_add(organization=org, origin=shop)
    pages["/"] = _page(concierge, org.widget_key)
    wait, box, answer = widget_ask(browser, shop + "/", "when will I get my refund?")
    assert "business days" in answer.text
    assert answer.find_element(By.CSS_SELECTOR, ".cc-sources a").text == "Returns and refunds"
    conversation = until(lambda: Conversation.objects.filter(organization=org).first())

    # An image, through the paperclip: stored, and shown from its signed link on this other origin.
    photo = tmp_path / "broken tent.png"
    Image.new("RGB", (40, 30), (10, 120, 40)).save(photo)
    picker = browser.find_element(By.CSS_SELECTOR, ".cc-form input[type=file]")
    browser.execute_script("arguments[0].hidden = false;", picker)
    picker.send_keys(str(photo))
    image = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".cc-customer img.cc-image")))
    wait.until(lambda driver: driver.execute_script("return arguments[0].naturalWidth", image) == 40)
    # A file that is not an image or a PDF: the server's reason shows, nothing is stored.
    fake = tmp_path / "invoice.pdf"
    fake.write_text("not really a pdf")
    picker.send_keys(str(fake))
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".cc-log"), "Only images"))
    assert Attachment.objects.filter(message__conversation=conversation).count() == 1

    # A reload, then a new tab: the same conversation, its history replayed.
    for opener in ("reload", "tab"):
        if opener == "tab":
            browser.switch_to.new_window("tab")
            browser.get(shop + "/")
        else:
            browser.refresh()
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".cc-launch"))).click()
        wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".cc-log"), "when will I get my refund?"))
        wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".cc-log"), "business days"))
    assert Conversation.objects.filter(organization=org).count() == 1
    assert Message.objects.filter(conversation=conversation, role="customer").count() == 2  # text, image

    # Asking for a person: the widget shows the place in the queue until someone answers.
    box = browser.find_element(By.CSS_SELECTOR, ".cc-form textarea")
    box.send_keys("I want to talk to a human", Keys.ENTER)
    queue = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".cc-queue")))
    assert "number 1 in the queue" in queue.text

    # An agent's reply with light formatting arrives formatted, with their name; no HTML runs.
    sam = tenancy.staff_member_create(organization=org, username="sam", password="x" * 12, first_name="Sam")

    services.conversation_reply(
        conversation=conversation, author=sam, text="**Good news**: it went out.\n\n- step one\n- step two"
    )
    agent = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".cc-agent")))
    assert "Sam joined the chat." in browser.find_element(By.CSS_SELECTOR, ".cc-log").text
    assert browser.find_elements(By.CSS_SELECTOR, ".cc-queue") == []
    assert agent.find_element(By.CSS_SELECTOR, ".cc-author").text == "Sam"
    assert agent.find_element(By.CSS_SELECTOR, "strong").text == "Good news"
    assert [li.text for li in agent.find_elements(By.CSS_SELECTOR, "li")] == ["step one", "step two"]


def test_a_website_not_allowed_is_refused_and_nothing_is_stored(stack, company_site, browser):
    By, _, ec, WebDriverWait = _tools()
    concierge, org = stack
    shop, pages = company_site
    pages["/"] = _page(concierge, org.widget_key)
    customers = Customer.objects.count()

    browser.get(shop + "/")
    WebDriverWait(browser, 30).until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".cc-launch"))).click()
    # Chromium reports the blocked request, and the widget says why in plain words.
    logged: list[str] = []

    def both_errors_logged():
        logged.extend(entry["message"] for entry in browser.get_log("browser"))
        return any("Access-Control-Allow-Origin" in m for m in logged) and any("Concierge widget" in m for m in logged)

    until(both_errors_logged, timeout=20)
    assert any("is not in the organization's allowed websites" in m for m in logged)
    assert Customer.objects.count() == customers
    assert not Conversation.objects.filter(organization=org).exists()


def test_identify_with_a_good_hash_and_a_forged_one(stack, company_site, browser):
    By, _, ec, WebDriverWait = _tools()
    concierge, org = stack
    shop, pages = company_site
    widget_origin_add(organization=org, origin=shop)
    secret = widget_settings(org).identity_secret
    call = (
        "<script>window.addEventListener('load', function () {{ setTimeout(function () {{"
        "window.Concierge.identify({{user_id: 'u-7', user_hash: '{hash}', email: 'kim@example.com', name: 'Kim'}})"
        ".then(function () {{ document.title = 'identified'; }}, function () {{ document.title = 'refused'; }});"
        "}}, 100); }});</script>"
    )
    pages["/good"] = _page(concierge, org.widget_key, after=call.format(hash=identity_hash(secret, "u-7")))
    pages["/forged"] = _page(concierge, org.widget_key, after=call.format(hash=identity_hash("guess", "u-7")))
    wait = WebDriverWait(browser, 30)

    browser.get(shop + "/forged")
    wait.until(ec.title_is("refused"))
    assert not Customer.objects.filter(organization=org, external_id="u-7").exists()

    browser.get(shop + "/good")
    wait.until(ec.title_is("identified"))
    customer = Customer.objects.get(organization=org, external_id="u-7")
    assert customer.email == "kim@example.com"
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".cc-launch"))).click()
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".cc-status"), "Online"))
    conversation = Conversation.objects.get(customer=customer)
    assert conversation.organization_id == org.pk


def test_mobile_viewport_and_the_chinese_ui(stack, company_site, browser):
    By, _, ec, WebDriverWait = _tools()
    concierge, org = stack
    shop, pages = company_site
    widget_origin_add(organization=org, origin=shop)
    config = widget_settings(org)
    config.color = "#aa3300"
    config.save()
    pages["/"] = _page(concierge, org.widget_key, extra_attrs="data-locale='zh-hans'")
    browser.set_window_size(375, 740)
    wait = WebDriverWait(browser, 30)

    browser.get(shop + "/")
    launch = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".cc-launch")))
    wait.until(lambda driver: launch.text.startswith("在线咨询"))
    # The organization's colour, applied from its settings once they load.
    wait.until(lambda driver: launch.value_of_css_property("background-color") == "rgba(170, 51, 0, 1)")
    launch.click()
    panel = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".cc-panel")))
    width = browser.execute_script("return window.innerWidth")
    height = browser.execute_script("return window.innerHeight")
    assert panel.size["width"] == width and panel.size["height"] == height
    assert panel.find_element(By.CSS_SELECTOR, ".cc-form button[type=submit]").text == "发送"
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".cc-status"), "在线"))
    # The queue notice after a handoff speaks Chinese too.
    panel.find_element(By.CSS_SELECTOR, ".cc-form textarea").send_keys("I want to talk to a human\n")
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".cc-queue"), "排第 1 位"))
    assert panel.find_element(By.CSS_SELECTOR, ".cc-attach").get_attribute("aria-label") == "发送图片或 PDF"
