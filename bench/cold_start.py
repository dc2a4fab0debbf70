"""Cold start: the first chat turn a freshly started web worker answers, against the turns after
it. Production stack on loopback with one web worker (so every turn reaches the fresh one):
for each round the worker is SIGKILLed, gunicorn starts a replacement, and once it answers
/healthz a new conversation asks --turns questions one after another over one websocket.
Reports the first turn, and the median and p95 of the others, per round and overall.

The first turn is also the first message of a conversation and always the same question, which
later turns mostly are not: so each round ends with a control, the same question as the first
message of new conversations on the now warm worker (--controls of them, median). The cold
first turn against that control is what the worker's start costs. Writes
bench/results/cold_start.json.

    .venv/bin/python bench/cold_start.py [--rounds 3] [--turns 100]
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.chatload import QUESTIONS
from bench.stack import ProductionStack, percentile, write_result


async def _session(http: aiohttp.ClientSession, base_url: str, widget_key: str) -> str:
    async with http.post(f"{base_url}/api/v1/widget/sessions", json={"widget_key": widget_key}) as response:
        return str((await response.json())["token"])


async def conversation_turns(base_url: str, widget_key: str, turns: int) -> list[float]:
    """``turns`` questions in a row, each timed until the bot's answer. A conversation the
    assistant hands to a person gets no more bot answers, so the next question then starts a
    new conversation (a question read as upset can hand it over)."""
    latencies: list[float] = []
    async with aiohttp.ClientSession() as http:
        while len(latencies) < turns:
            token = await _session(http, base_url, widget_key)
            ws_url = base_url.replace("http", "ws", 1) + f"/ws/chat/?token={token}"
            async with websockets.connect(ws_url, origin=base_url, ping_interval=None) as ws:
                while len(latencies) < turns:
                    n = len(latencies)
                    started = time.perf_counter()
                    text = QUESTIONS[n % len(QUESTIONS)]
                    await ws.send(json.dumps({"type": "message", "id": f"c{n}", "text": text}))
                    while True:
                        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=60))
                        if frame.get("type") == "message" and frame.get("role") == "bot":
                            break
                        if frame.get("type") == "error":
                            raise RuntimeError(f"turn {n}: {frame}")
                    latencies.append((time.perf_counter() - started) * 1000)
                    if frame.get("handoff"):
                        break
    return latencies


def wait_healthy(base_url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base_url + "/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the replacement worker did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--controls", type=int, default=5, help="warm first turns a round, for the control")
    parser.add_argument("--pause", type=float, default=3.0, help="seconds of quiet before each paused control")
    args = parser.parse_args()
    rounds = []
    # One conversation asks every question of a round, faster than a person: lift its limit.
    os.environ["RATE_CHAT_MESSAGES_PER_SESSION"] = "1000000/min"
    with ProductionStack(web_workers=1) as stack:
        for n in range(args.rounds):
            stack.kill_one_web_worker()
            time.sleep(1.0)  # let the master notice and fork the replacement
            wait_healthy(stack.base_url)
            latencies = asyncio.run(conversation_turns(stack.base_url, stack.widget_key, args.turns))
            controls = [
                asyncio.run(conversation_turns(stack.base_url, stack.widget_key, 1))[0] for _ in range(args.controls)
            ]
            paused = []
            for _ in range(args.controls):
                time.sleep(args.pause)
                paused.append(asyncio.run(conversation_turns(stack.base_url, stack.widget_key, 1))[0])
            rest = latencies[1:]
            row = {
                "first_ms": round(latencies[0], 1),
                "rest_p50_ms": round(statistics.median(rest), 1),
                "rest_p95_ms": percentile(rest, 0.95),
                "hundredth_ms": round(latencies[-1], 1),
                "warm_first_ms": round(statistics.median(controls), 1),
                "warm_after_pause_ms": round(statistics.median(paused), 1),
            }
            rounds.append(row)
            print(f"round {n + 1}: first turn {row['first_ms']} ms, then p50 {row['rest_p50_ms']} ms "
                  f"p95 {row['rest_p95_ms']} ms, last {row['hundredth_ms']} ms; the same first turn "
                  f"on the warm worker {row['warm_first_ms']} ms, after {args.pause:g} s of quiet "
                  f"{row['warm_after_pause_ms']} ms", flush=True)  # fmt: skip
    ratio = statistics.median(r["first_ms"] / r["rest_p50_ms"] for r in rounds)
    cold_over_warm = statistics.median(r["first_ms"] / r["warm_first_ms"] for r in rounds)
    print(f"first turn / median turn after it: {ratio:.2f}x (median over {len(rounds)} fresh workers)")
    cold_over_paused = statistics.median(r["first_ms"] / r["warm_after_pause_ms"] for r in rounds)
    print(f"first turn of a fresh worker / the same first turn on a warm one: {cold_over_warm:.2f}x")
    print(f"first turn of a fresh worker / the same first turn on a warm one after {args.pause:g} s of quiet: "
          f"{cold_over_paused:.2f}x")  # fmt: skip
    path = write_result(
        "cold_start",
        {
            "stack": "gunicorn + 1 uvicorn worker",
            "rounds": rounds,
            "ratio": ratio,
            "cold_over_warm": cold_over_warm,
            "cold_over_paused": cold_over_paused,
            "pause_s": args.pause,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
