"""Secure headers on the widget host page and the rest of the site. (The browser test runs the
widget under this policy, so a policy that broke it would fail there.)"""

import pytest

pytestmark = pytest.mark.django_db


def test_widget_host_page_has_a_strict_content_security_policy(client, org):
    page = client.get("/")
    policy = dict(part.strip().split(" ", 1) for part in page["Content-Security-Policy"].split(";"))
    assert policy["script-src"] == "'self'"  # no inline or third-party scripts
    assert policy["style-src"] == "'self'"  # the widget's styles are a static stylesheet
    assert policy["default-src"] == "'self'" and policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'" and policy["base-uri"] == "'self'"
    assert "ws://testserver" in policy["connect-src"] and "wss://testserver" in policy["connect-src"]
    assert page["Permissions-Policy"].startswith("camera=()")
    assert page["X-Content-Type-Options"] == "nosniff" and page["Referrer-Policy"] == "same-origin"
    assert page["Cross-Origin-Opener-Policy"] == "same-origin"


def test_only_the_api_docs_page_may_run_its_inline_script(admin_client):
    docs = admin_client.get("/api/docs/")
    assert "script-src 'self' 'unsafe-inline'" in docs["Content-Security-Policy"]
    api = admin_client.get("/api/v1/tickets/")
    assert "Content-Security-Policy" not in api  # JSON needs no policy
