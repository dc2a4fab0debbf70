"""Locust load for the HTTP side: staff on the API (ticket list, detail, update, knowledge
search) and customers opening widget sessions (settings, then a session), under a stepped or
a spike load shape, bounded in time. At the end it checks p95 under 200 ms and errors under
0.1% and exits 1 when either fails; the summary goes to $LOCUST_RESULT as JSON.

Run through bench/api_locust.py (it starts the production stack on loopback and passes
CONCIERGE_API_TOKEN, CONCIERGE_WIDGET_KEY and the ticket ids):

    LOCUST_SHAPE=step|spike locust -f bench/locustfile.py --headless --host http://127.0.0.1:PORT

The chat websockets have their own asyncio client (bench/chatload.py); Locust drives HTTP."""

import json
import os
import random
from typing import Any

from locust import HttpUser, LoadTestShape, between, events, task

P95_LIMIT_MS = 200
ERROR_LIMIT = 0.001
QUERIES = ["refund", "membership price", "tent warranty", "ski rental", "paypal", "shipping time"]
TICKETS = [int(t) for t in os.environ.get("CONCIERGE_TICKET_IDS", "").split(",") if t]


class Staff(HttpUser):
    """An agent working the queue: mostly reading, now and then editing, sometimes searching."""

    weight = 3
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Token {os.environ['CONCIERGE_API_TOKEN']}"

    @task(4)
    def ticket_list(self) -> None:
        self.client.get("/api/v1/tickets/", name="ticket list")

    @task(4)
    def ticket_detail(self) -> None:
        self.client.get(f"/api/v1/tickets/{random.choice(TICKETS)}/", name="ticket detail")

    @task(1)
    def ticket_update(self) -> None:
        priority = random.choice(["low", "medium", "high"])
        self.client.patch(
            f"/api/v1/tickets/{random.choice(TICKETS)}/", json={"priority": priority}, name="ticket update"
        )

    @task(2)
    def knowledge_search(self) -> None:
        self.client.get(f"/api/v1/kb/search?q={random.choice(QUERIES)}", name="knowledge search")


class Visitor(HttpUser):
    """A customer on the company's site opening the chat: the widget's settings, then a session."""

    weight = 1
    wait_time = between(2, 6)

    @task
    def open_chat(self) -> None:
        key = os.environ["CONCIERGE_WIDGET_KEY"]
        self.client.get(f"/api/v1/widget/config?key={key}", name="widget settings")
        self.client.post("/api/v1/widget/sessions", json={"widget_key": key}, name="widget session")


class Shape(LoadTestShape):
    """step: users rise in steps (a minute in all); spike: a calm base, a sudden burst, calm again."""

    STEP = [(15, 10), (30, 20), (45, 40), (60, 60)]  # (until second, users)
    SPIKE = [(20, 10), (35, 80), (60, 10)]

    def tick(self) -> tuple[int, float] | None:
        plan = self.SPIKE if os.environ.get("LOCUST_SHAPE", "step") == "spike" else self.STEP
        now = self.get_run_time()
        for until, users in plan:
            if now < until:
                return users, 20.0
        return None


@events.quitting.add_listener
def check(environment: Any, **kwargs: Any) -> None:
    total = environment.stats.total
    p95 = total.get_response_time_percentile(0.95) or 0
    error_rate = total.num_failures / total.num_requests if total.num_requests else 1.0
    passed = p95 < P95_LIMIT_MS and error_rate < ERROR_LIMIT
    summary = {
        "shape": os.environ.get("LOCUST_SHAPE", "step"),
        "requests": total.num_requests,
        "rps": round(total.total_rps, 1),
        "p50_ms": total.get_response_time_percentile(0.5),
        "p95_ms": p95,
        "error_rate": round(error_rate, 5),
        "passed": passed,
        "by_endpoint": {
            name: {
                "requests": entry.num_requests,
                "p50_ms": entry.get_response_time_percentile(0.5),
                "p95_ms": entry.get_response_time_percentile(0.95),
                "failures": entry.num_failures,
            }
            for (name, _method), entry in environment.stats.entries.items()
        },
    }
    if os.environ.get("LOCUST_RESULT"):
        with open(os.environ["LOCUST_RESULT"], "w") as out:
            json.dump(summary, out, indent=2)
    environment.process_exit_code = 0 if passed else 1
