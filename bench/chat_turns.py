"""Chat turn latency on the demo, one machine: message sent → bot reply received over the
websocket, plus the server-side pipeline time the bot message records. Starts uvicorn on the
embedded defaults (SQLite, in-memory channel layer) in a throw-away folder, loads the demo,
and runs N conversations one after another (no concurrency: this is the latency of a turn,
not a load test). Writes bench/results/chat_turns.json.

    .venv/bin/python bench/chat_turns.py [--turns 200]
"""

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.stack import embedded_server  # noqa: E402

QUESTIONS = [
    "hi",
    "when will I get my refund?",
    "how much is membership?",
    "where is my order?",
    "my tent pole snapped, is that covered by warranty?",
    "I forgot my password",
    "can I rent skis?",
    "do you take paypal?",
    "what's the capital of Peru?",
    "thanks, bye",
]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def run_turns(base: str, key: str, turns: int) -> list[float]:
    import websockets

    round_trips: list[float] = []
    done = 0
    while done < turns:
        request = urllib.request.Request(
            base + "/api/v1/widget/sessions",
            data=json.dumps({"widget_key": key}).encode(),
            headers={"Content-Type": "application/json"},
        )
        token = json.loads(urllib.request.urlopen(request).read())["token"]
        url = base.replace("http", "ws") + f"/ws/chat/?token={token}"
        async with websockets.connect(url, origin=base) as socket_:
            for n, question in enumerate(QUESTIONS):
                started = time.perf_counter()
                await socket_.send(json.dumps({"type": "message", "id": f"q{n}", "text": question}))
                while True:
                    frame = json.loads(await asyncio.wait_for(socket_.recv(), timeout=30))
                    if frame["type"] == "message" and frame["role"] == "bot":
                        break
                round_trips.append((time.perf_counter() - started) * 1000)
                done += 1
                if frame.get("handoff") or done >= turns:
                    break
    return round_trips


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=200)
    args = parser.parse_args()
    with embedded_server() as (base, env):
        html = urllib.request.urlopen(base + "/").read().decode()
        key = re.search(r'data-widget-key="([^"]+)"', html).group(1)
        asyncio.run(run_turns(base, key, 3))  # warm up: models load on the first turn
        round_trips = asyncio.run(run_turns(base, key, args.turns))

    sys.path.insert(0, str(ROOT))
    os.environ.update(env, DJANGO_SETTINGS_MODULE="config.settings")
    import django

    django.setup()
    from tickets.models import Message

    totals = [
        m["timings_ms"]["total"]
        for m in Message.objects.filter(role="bot").order_by("-pk").values_list("metadata", flat=True)[: args.turns]
        if m and "timings_ms" in m
    ]
    report = {
        "benchmark": "chat_turns",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "setup": "uvicorn, SQLite, in-memory channel layer, demo knowledge base and intents, sequential turns",
        "turns": len(round_trips),
        "round_trip_ms": {
            "p50": round(statistics.median(round_trips), 1),
            "p95": round(percentile(round_trips, 0.95), 1),
            "max": round(max(round_trips), 1),
        },
        "server_pipeline_ms": {
            "p50": round(statistics.median(totals), 1),
            "p95": round(percentile(totals, 0.95), 1),
        },
    }
    out = ROOT / "bench" / "results" / "chat_turns.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
