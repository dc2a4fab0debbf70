"""A request that gets no database connection in time answers every page 503 with Retry-After, as
the DRF API does: admin, the console and the demo site are plain Django views, and used to answer
a bare 500. A real psycopg pool times out inside the view, through Django's error wrapper and its
full request handling: "busy" when every connection of the process's pool is in use (overload),
"unavailable" when the database cannot be reached (an outage). Any other failure is still a 500."""

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from tests.security import busy_urls
from tests.support import exhausted_pool as pool_exhausted
from tests.support import unreachable_pool

pytestmark = pytest.mark.urls("tests.security.busy_urls")


@contextlib.contextmanager
def pages_wait_on(no_connection: Any) -> Iterator[None]:
    """The test pages ask the pool that ``no_connection()`` makes, and time out."""
    with no_connection() as pool:
        busy_urls.POOL[:] = [pool]
        try:
            yield
        finally:
            busy_urls.POOL.clear()


@pytest.fixture
def exhausted_pool(db):
    with pages_wait_on(pool_exhausted):
        yield


def test_a_page_out_of_connections_answers_503_busy_with_retry_after(exhausted_pool):
    client = Client(raise_request_exception=False)
    page = client.get("/test-busy/", HTTP_ACCEPT="text/html")
    assert page.status_code == 503 and page["Retry-After"] == "1"
    assert page["Content-Type"].startswith("text/html")
    assert b"<h1>Busy</h1>" in page.content
    assert b"The service is busy: try again in a moment." in page.content

    # An API path, or a client that asks for JSON, gets the API's busy object.
    for path, accept in (("/api/test-busy/", "*/*"), ("/test-busy/", "application/json")):
        answer = client.get(path, HTTP_ACCEPT=accept)
        assert answer.status_code == 503 and answer["Retry-After"] == "1"
        assert answer.json() == {"detail": "The service is busy: try again in a moment.", "code": "busy"}


def test_a_page_that_cannot_reach_the_database_answers_503_unavailable(db):
    client = Client(raise_request_exception=False)
    with pages_wait_on(unreachable_pool):
        page = client.get("/test-busy/", HTTP_ACCEPT="text/html")
        answer = client.get("/api/test-busy/")
    assert page.status_code == 503 and page["Retry-After"] == "5"
    assert b"<h1>Unavailable</h1>" in page.content
    assert b"cannot reach its database just now" in page.content
    assert answer.status_code == 503 and answer["Retry-After"] == "5"
    assert answer.json() == {
        "detail": "The service cannot reach its database just now: try again shortly.",
        "code": "unavailable",
    }


def test_any_other_failure_is_still_a_500(db):
    response = Client(raise_request_exception=False).get("/test-broken/")
    assert response.status_code == 500 and "Retry-After" not in response
