"""Chat load: N concurrent widget conversations against the production stack on loopback
(gunicorn with uvicorn workers, PostgreSQL with fsync on, Redis, a Celery worker), each
asking a question every 15-45 s (human pace) and waiting for the bot. Reports bot-turn
latency (message sent -> bot reply received) p50/p95/p99, errors, messages lost (compared
with the database afterwards) and server RSS. Writes bench/results/chat_load.json.

    .venv/bin/python bench/chat_load.py [--levels 100,500,1000] [--duration 120] [--web-workers 2]
"""

import argparse
import asyncio
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.chatload import lost_messages, run_load
from bench.stack import ProductionStack, write_result


def sample_rss(stack: ProductionStack, stop: threading.Event, samples: list[dict[str, float]]) -> None:
    while not stop.wait(2.0):
        samples.append(stack.rss_mb())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="100,500,1000", help="comma-separated conversation counts")
    parser.add_argument("--duration", type=float, default=120, help="seconds of steady load per level")
    parser.add_argument("--ramp", type=float, default=30, help="seconds over which conversations join")
    parser.add_argument("--think", default="15,45", help="seconds between a reply and the next question")
    parser.add_argument("--web-workers", type=int, default=2)
    args = parser.parse_args()
    levels = [int(n) for n in args.levels.split(",")]
    think = tuple(float(x) for x in args.think.split(","))
    results = []
    with ProductionStack(web_workers=args.web_workers) as stack:
        idle = stack.rss_mb()
        for level in levels:
            samples: list[dict[str, float]] = []
            stop = threading.Event()
            sampler = threading.Thread(target=sample_rss, args=(stack, stop, samples), daemon=True)
            sampler.start()
            started = time.perf_counter()
            stats = asyncio.run(
                run_load(stack.base_url, stack.widget_key, conversations=level, duration=args.duration,
                         ramp=args.ramp, think=(think[0], think[1]))
            )  # fmt: skip
            elapsed = time.perf_counter() - started
            stop.set()
            sampler.join()
            summary = stats.summary()
            lost = lost_messages(stack, stats)
            peak = max(samples, key=lambda s: s["web"]) if samples else stack.rss_mb()
            row = {
                "concurrent_conversations": level,
                "seconds": round(elapsed, 1),
                "turns_per_second": round(summary["bot_replies"] / elapsed, 1),
                **summary,
                "lost": lost,
                "rss_mb": {"idle": idle, "peak": peak},
            }
            results.append(row)
            turn = row["turn_ms"]
            print(
                f"{level:>5} conversations: {summary['messages_sent']} sent, {summary['bot_replies']} answered, "
                f"turn p50 {turn['p50']} ms p95 {turn['p95']} ms p99 {turn['p99']} ms, "
                f"errors {summary['errors']}, reconnects {summary['reconnects']}, lost {lost}, "
                f"web RSS peak {peak['web']} MB",
                flush=True,
            )
    path = write_result(
        "chat_load",
        {
            "stack": f"gunicorn + {args.web_workers} uvicorn workers, PostgreSQL (fsync on), Redis, Celery worker",
            "think_seconds": list(think),
            "duration_seconds": args.duration,
            "levels": results,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
