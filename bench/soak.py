"""Soak: a long chat run on the production stack with two faults injected mid-run, checking
that memory stays flat and that no message is lost.

- at 1/3 of the run Redis (channel layer, cache, broker) is shut down and restarted;
- at 2/3 one gunicorn web worker is killed with SIGKILL (gunicorn starts a replacement).

Clients behave like the widget: they reconnect, resume from their last sequence number and
resend an unacknowledged message under the same client id. Afterwards every message a client
sent is looked up in the database: stored once, and answered by the bot. Web RSS is sampled
every 10 s. Writes bench/results/soak.json.

    .venv/bin/python bench/soak.py [--minutes 10] [--conversations 200]
"""

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.chatload import lost_messages, run, run_load
from bench.stack import ProductionStack, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--think", default="10,30")
    parser.add_argument("--web-workers", type=int, default=2)
    args = parser.parse_args()
    think = tuple(float(x) for x in args.think.split(","))
    duration = args.minutes * 60
    ramp = 20.0
    events: list[dict[str, object]] = []
    rss: list[dict[str, object]] = []
    with ProductionStack(web_workers=args.web_workers) as stack:
        started = time.monotonic()
        stop = threading.Event()

        def disturb() -> None:
            if stop.wait(ramp + duration / 3):
                return
            stack.restart_redis(down_seconds=3)
            events.append({"at_s": round(time.monotonic() - started), "event": "redis restarted (down 3 s)"})
            if stop.wait(ramp + 2 * duration / 3 - (time.monotonic() - started)):
                return
            victim = stack.kill_one_web_worker()
            events.append({"at_s": round(time.monotonic() - started), "event": f"web worker {victim} killed"})

        def sample() -> None:
            while not stop.wait(10):
                rss.append({"at_s": round(time.monotonic() - started), **stack.rss_mb()})

        threads = [threading.Thread(target=disturb, daemon=True), threading.Thread(target=sample, daemon=True)]
        for thread in threads:
            thread.start()
        stats = run(
            run_load(stack.base_url, stack.widget_key, conversations=args.conversations, duration=duration,
                     ramp=ramp, think=(think[0], think[1]))
        )  # fmt: skip
        stop.set()
        for thread in threads:
            thread.join()
        summary = stats.summary()
        lost = lost_messages(stack, stats)
    steady = [r for r in rss if r["at_s"] >= ramp + 60]
    first, last = (steady[0], steady[-1]) if steady else (None, None)
    result = {
        "minutes": args.minutes,
        "conversations": args.conversations,
        "think_seconds": list(think),
        "events": events,
        **summary,
        "lost": lost,
        "rss_mb_samples": rss,
        "web_rss_growth_mb": round(float(last["web"]) - float(first["web"]), 1) if first and last else None,
    }
    path = write_result("soak", result)
    print(
        f"soak {args.minutes} min, {args.conversations} conversations: {summary['messages_sent']} sent, "
        f"{summary['bot_replies']} answered, turn p95 {summary['turn_ms']['p95']} ms, "
        f"reconnects {summary['reconnects']}, errors {summary['errors']}, lost {lost}, "
        f"web RSS growth {result['web_rss_growth_mb']} MB (note: the killed worker was replaced); events {events}"
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
