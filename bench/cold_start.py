"""Cold start: the first chat turn a freshly started web worker answers, against the turns after
it. Production stack on loopback with one web worker (so every turn reaches the fresh one):
for each round the worker is SIGKILLed, gunicorn starts a replacement, and once it answers
/healthz a new conversation asks --turns questions one after another over one websocket.
Reports the first turn, and the median and p95 of the others, per round and overall.

The first turn is also the first message of a conversation and always the same question, which
later turns mostly are not: so each round ends with a control, the same question as the first
message of new conversations on the now warm worker (--controls of them, median). The cold
first turn against that control is what the worker's start costs. A turn of ~17 ms moves by
several ms from one moment to the next on this shared machine, so the summary gives each ratio's
median over the fresh workers with a 95% bootstrap interval (rounds resampled), and where the
cold first turn falls among its round's warm ones (the share of them faster than it: about 0.5
when the worker's start costs nothing, 1.0 when every warm turn is faster). Writes
bench/results/cold_start.json.

    .venv/bin/python bench/cold_start.py [--rounds 3] [--turns 100]
"""

import argparse
import asyncio
import json
import os
import random
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


def median_interval(values: list[float], resamples: int = 2000, seed: int = 14) -> tuple[float, float, float]:
    """The median of ``values`` and its 95% bootstrap interval (the values resampled with
    replacement), rounded to three places."""
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples))
    low, high = medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]
    return round(statistics.median(values), 3), round(low, 3), round(high, 3)


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
            rest, warm = latencies[1:], controls + paused
            row = {
                "first_ms": round(latencies[0], 1),
                "rest_p50_ms": round(statistics.median(rest), 1),
                "rest_p95_ms": percentile(rest, 0.95),
                "hundredth_ms": round(latencies[-1], 1),
                "warm_first_ms": round(statistics.median(controls), 1),
                "warm_after_pause_ms": round(statistics.median(paused), 1),
                # Where the cold first turn falls among the same question's warm first turns.
                "warm_faster_share": round(sum(w < latencies[0] for w in warm) / len(warm), 2),
            }
            rounds.append(row)
            print(f"round {n + 1}: first turn {row['first_ms']} ms, then p50 {row['rest_p50_ms']} ms "
                  f"p95 {row['rest_p95_ms']} ms, last {row['hundredth_ms']} ms; the same first turn "
                  f"on the warm worker {row['warm_first_ms']} ms, after {args.pause:g} s of quiet "
                  f"{row['warm_after_pause_ms']} ms", flush=True)  # fmt: skip
    intervals = {
        name: median_interval([r["first_ms"] / r[key] for r in rounds])
        for name, key in (("ratio", "rest_p50_ms"), ("cold_over_warm", "warm_first_ms"),
                          ("cold_over_paused", "warm_after_pause_ms"), ("cold_over_hundredth", "hundredth_ms"))
    }  # fmt: skip
    ratio, cold_over_warm, cold_over_paused = (intervals[k][0] for k in ("ratio", "cold_over_warm", "cold_over_paused"))
    warm_faster = median_interval([r["warm_faster_share"] for r in rounds])

    def shown(name: str) -> str:
        median, low, high = intervals[name]
        return f"{median:.2f}x (95% interval {low:.2f}-{high:.2f})"

    print(f"over {len(rounds)} fresh workers, medians:")
    print(f"first turn / median turn after it: {shown('ratio')}")
    print(f"first turn / the hundredth: {shown('cold_over_hundredth')}")
    print(f"first turn of a fresh worker / the same first turn on a warm one: {shown('cold_over_warm')}")
    print(f"first turn of a fresh worker / the same first turn on a warm one after {args.pause:g} s of quiet: "
          f"{shown('cold_over_paused')}")  # fmt: skip
    print(f"share of the same question's warm first turns faster than the cold one: {warm_faster[0]:.2f} "
          f"(95% interval {warm_faster[1]:.2f}-{warm_faster[2]:.2f}; 0.5 = no cost)")  # fmt: skip
    path = write_result(
        "cold_start",
        {
            "stack": "gunicorn + 1 uvicorn worker",
            "rounds": rounds,
            "ratio": ratio,
            "cold_over_warm": cold_over_warm,
            "cold_over_paused": cold_over_paused,
            "intervals_95": {name: {"median": m, "low": lo, "high": hi} for name, (m, lo, hi) in intervals.items()},
            "warm_faster_share": {"median": warm_faster[0], "low": warm_faster[1], "high": warm_faster[2]},
            "pause_s": args.pause,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
