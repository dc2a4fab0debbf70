"""Knowledge changes reach every serving process, on the production stack for real: gunicorn
with two uvicorn workers, a Celery worker and a Chroma server on loopback. An article published
through the knowledge services is cited by a chat turn in each web worker within the bound the
README states; once retracted, neither cites it. A freshly started worker answers fifty
concurrent first searches without an error."""

import json
import socket
import threading
import time
import urllib.parse
import urllib.request

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.authtoken.models import Token
from websockets.sync.client import connect

from knowledge.services import kb_article_publish, kb_article_unpublish
from tests.knowledge.test_freshness import ALPACA_QUESTION, alpaca_article
from tests.support import (
    CELERY_WORKER,
    GUNICORN,
    Processes,
    free_port,
    healthy,
    http,
    production_env,
    until,
    ws_frames_until,
)
from tests.tenancy.factories import StaffFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TITLE = "Alpacas at the climbing wall"
FRESHNESS_BOUND_SECONDS = 10  # stated in README ("Knowledge freshness")


@pytest.fixture(autouse=True)
def _real_services():
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip("the production stack runs on PostgreSQL and Redis")


def ask(stack: Processes, port: int, widget_key: str) -> tuple[int, list[str]]:
    """One chat turn in a new conversation: the pid of the web worker that answered, and the
    titles the answer cited."""
    status, body = http(f"http://127.0.0.1:{port}/api/v1/widget/sessions", {"widget_key": widget_key})
    assert status == 201, body
    session = json.loads(body)
    with connect(f"ws://127.0.0.1:{port}/ws/chat/?token={session['token']}", origin=f"http://127.0.0.1:{port}") as ws:
        ws.send(json.dumps({"type": "message", "id": "q1", "text": ALPACA_QUESTION}))
        answer = ws_frames_until(ws, lambda f: f["type"] == "message" and f["role"] == "bot")[-1]

    def worker_pid() -> int | None:
        for line in stack.log("web").splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("conversation_id") == session["conversation_id"] and entry["message"].startswith(
                    "bot turn"
                ):
                    return int(entry["pid"])
        return None

    pid = until(worker_pid, timeout=10, every=0.05)
    assert pid, stack.log("web")[-2000:]
    return pid, [source["title"] for source in answer["sources"]]


def seconds_until_each_worker(stack, port, widget_key, workers: set[int], cites: bool, started: float):
    """Ask until every worker's answer cites the article (or, with cites=False, no longer does);
    the seconds from ``started`` at which each worker first did."""
    reached: dict[int, float] = {}
    deadline = started + FRESHNESS_BOUND_SECONDS + 20  # ask past the bound, so a miss is measured
    while set(reached) != workers and time.monotonic() < deadline:
        pid, titles = ask(stack, port, widget_key)
        if (TITLE in titles) == cites and pid not in reached:
            reached[pid] = time.monotonic() - started
    return reached


def test_publish_and_retract_reach_every_web_worker_within_the_bound(chroma_server, trained_org, tmp_path):
    port = free_port()
    env = production_env(tmp_path, port, CHROMA_HOST=chroma_server)
    with Processes(tmp_path, env) as stack:
        stack.start("web", GUNICORN)
        stack.start("worker", CELERY_WORKER)
        assert until(lambda: healthy(f"http://127.0.0.1:{port}"), timeout=90), stack.log("web")[-3000:]

        # Before: no article; both workers answer (and neither cites one that does not exist).
        workers: set[int] = set()
        for _ in range(40):
            pid, titles = ask(stack, port, trained_org.widget_key)
            assert TITLE not in titles
            workers.add(pid)
            if len(workers) == 2:
                break
        assert len(workers) == 2, "the turns did not reach both web workers"

        article = alpaca_article(trained_org)
        started = time.monotonic()
        kb_article_publish(article=article)  # commits; the Celery worker indexes it into Chroma
        published = seconds_until_each_worker(stack, port, trained_org.widget_key, workers, True, started)
        print(f"published article cited by each worker after {published} s")
        assert set(published) == workers, (published, stack.log("worker")[-2000:])
        assert max(published.values()) < FRESHNESS_BOUND_SECONDS

        started = time.monotonic()
        kb_article_unpublish(article=article)
        retracted = seconds_until_each_worker(stack, port, trained_org.widget_key, workers, False, started)
        print(f"retracted article no longer cited by each worker after {retracted} s")
        assert set(retracted) == workers and max(retracted.values()) < FRESHNESS_BOUND_SECONDS


def test_fifty_concurrent_first_searches_on_a_freshly_started_worker(chroma_server, trained_org, tmp_path):
    token = Token.objects.create(user=StaffFactory(organization=trained_org, username="ann")).key
    port = free_port()
    env = production_env(tmp_path, port, CHROMA_HOST=chroma_server, WEB_CONCURRENCY="1")
    with Processes(tmp_path, env) as stack:
        stack.start("web", GUNICORN)

        def listening() -> bool:  # the socket, not the application: no request warms anything
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        assert until(listening, timeout=60, every=0.05), stack.log("web")[-3000:]
        barrier = threading.Barrier(50)
        answers: list[tuple[int, str]] = []

        def search() -> None:
            query = urllib.parse.urlencode({"q": "how do I get my money back for a jacket", "k": 3})
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/kb/search?{query}", headers={"Authorization": f"Token {token}"}
            )
            barrier.wait()
            try:
                with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                    answers.append((response.status, json.loads(response.read())["hits"][0]["title"]))
            except urllib.error.HTTPError as error:
                answers.append((error.code, error.read().decode()[:200]))
            except OSError as error:
                answers.append((0, repr(error)))

        threads = [threading.Thread(target=search) for _ in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert answers == [(200, "Returns and refunds")] * 50, stack.log("web")[-3000:]
