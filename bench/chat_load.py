"""Chat load: N concurrent widget conversations against the production stack on loopback
(gunicorn with uvicorn workers, PostgreSQL with fsync on, Redis, a Celery worker), each
asking a question every 15-45 s (human pace) and waiting for the bot. Reports bot-turn
latency (message sent -> bot reply received) p50/p95/p99, errors, messages lost (compared
with the database afterwards) and server RSS. Writes bench/results/chat_load.json.

    .venv/bin/python bench/chat_load.py [--levels 100,500,1000] [--duration 120] [--web-workers 2]

With --capacity-steps R1,R2,... it then finds the turn capacity by a stepped ramp:
CAPACITY_CONVERSATIONS conversations open their sessions and websockets once (a warm-up at the
first step's pace, not counted) and stay open from step to step while the pace rises; in each
step they ask R turns a second in all for --step-seconds, counted after --settle seconds (the
turns queued at the last pace drain; the think times left scale with the pace at once). The
capacity is the highest achieved rate (replies a second in the counted part) of a step whose
bot-turn p95 stays under 300 ms with no busy refusal and no error. A conversation handed to a
person stops and a new customer takes its seat. Then one step offers twice the most any step
achieved (--overload), to fresh conversations opening at once: refused messages come back with
a busy frame and are sent again, and nothing may be lost.
"""

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.chatload import lost_messages, run, run_load, stepped_ramp
from bench.stack import ProductionStack, percentile, write_result


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
    parser.add_argument("--capacity-steps", default="", help="offered turns/s per step, e.g. 10,15,20,25,30")
    parser.add_argument("--step-seconds", type=float, default=60)
    parser.add_argument("--settle", type=float, default=10, help="seconds of each step not counted")
    parser.add_argument("--overload", action="store_true", help="after the steps, offer twice the capacity")
    args = parser.parse_args()
    levels = [int(n) for n in args.levels.split(",") if n]
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
            stats = run(
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
                f"errors {summary['errors']}, reconnects {summary['reconnects']}, refused busy "
                f"{summary['refused_busy']}, lost {lost}, "
                f"web RSS peak {peak['web']} MB (PSS {peak.get('web_pss')} MB)",
                flush=True,
            )
        steps = [float(r) for r in args.capacity_steps.split(",") if r]
        capacity = capacity_run(stack, steps, args.step_seconds, args.settle, args.overload) if steps else None
    path = write_result(
        "chat_load",
        {
            "stack": f"gunicorn + {args.web_workers} uvicorn workers, PostgreSQL (fsync on), Redis, Celery worker",
            "think_seconds": list(think),
            "duration_seconds": args.duration,
            "levels": results,
            "capacity": capacity,
        },
    )
    print(f"wrote {path}")


CAPACITY_CONVERSATIONS = 500
TARGET_P95_MS = 300


def capacity_step(stack: ProductionStack, rate: float, seconds: float) -> dict[str, object]:
    """CAPACITY_CONVERSATIONS conversations asking ``rate`` turns a second in all."""
    mean_think = CAPACITY_CONVERSATIONS / rate
    started = time.perf_counter()
    stats = run(
        run_load(stack.base_url, stack.widget_key, conversations=CAPACITY_CONVERSATIONS, duration=seconds,
                 ramp=5, think=(0.5 * mean_think, 1.5 * mean_think))
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    summary = stats.summary()
    row = {
        "offered_turns_per_second": rate,
        "achieved_turns_per_second": round(summary["bot_replies"] / elapsed, 1),
        **summary,
        "lost": lost_messages(stack, stats),
    }
    # The step's second half: the sessions are open and every conversation is at its pace.
    half = seconds / 2
    steady = stats.latencies_between(stats.until - half, stats.until)
    row["sustained_turns_per_second"] = round(len(steady) / half, 1)
    row["sustained_turn_ms"] = {"p50": percentile(steady, 0.50), "p95": percentile(steady, 0.95),
                                "p99": percentile(steady, 0.99)}  # fmt: skip
    turn = row["turn_ms"]
    print(f"  offered {rate:>5.1f}/s: achieved {row['achieved_turns_per_second']}/s, turn p50 {turn['p50']} ms "
          f"p95 {turn['p95']} ms p99 {turn['p99']} ms, errors {summary['errors']}, refused busy "
          f"{summary['refused_busy']}, lost {row['lost']}; second half {row['sustained_turns_per_second']}/s, "
          f"p95 {row['sustained_turn_ms']['p95']} ms", flush=True)  # fmt: skip
    return row


def capacity_run(
    stack: ProductionStack, steps: list[float], seconds: float, settle: float, overload: bool
) -> dict[str, object]:
    """The stepped ramp over CAPACITY_CONVERSATIONS conversations held open (chatload.stepped_ramp)."""
    print(f"turn capacity: {CAPACITY_CONVERSATIONS} conversations held open, {seconds:.0f} s a step, "
          f"counted after {settle:.0f} s", flush=True)  # fmt: skip
    stats, windows = run(
        stepped_ramp(stack.base_url, stack.widget_key, conversations=CAPACITY_CONVERSATIONS, rates=steps,
                     seconds=seconds, settle=settle)
    )  # fmt: skip
    rows = []
    for step in windows:
        latencies = stats.latencies_between(step.measured_from, step.ends)
        trouble = sum(1 for c in stats.conversations for at in c.trouble_at if step.measured_from <= at < step.ends)
        row = {
            "offered_turns_per_second": step.rate,
            "achieved_turns_per_second": round(len(latencies) / (step.ends - step.measured_from), 1),
            "turn_ms": {"count": len(latencies), "p50": percentile(latencies, 0.50),
                        "p95": percentile(latencies, 0.95), "p99": percentile(latencies, 0.99)},
            "refusals_and_errors": trouble,
        }  # fmt: skip
        rows.append(row)
        turn = row["turn_ms"]
        print(f"  offered {step.rate:>5.1f}/s: achieved {row['achieved_turns_per_second']}/s, turn p50 {turn['p50']} "
              f"ms p95 {turn['p95']} ms p99 {turn['p99']} ms, refusals and errors {trouble}", flush=True)  # fmt: skip
    summary = stats.summary()
    lost = lost_messages(stack, stats)
    passed = [r for r in rows if not r["refusals_and_errors"] and (r["turn_ms"]["p95"] or 1e9) < TARGET_P95_MS]
    capacity = max((r["achieved_turns_per_second"] for r in passed), default=0.0)
    print(f"turn capacity (p95 under {TARGET_P95_MS} ms): {capacity} turns/s; the whole ramp: "
          f"{summary['messages_sent']} sent, {summary['bot_replies']} answered, {summary['errors']} errors, "
          f"{summary['refused_busy']} refused busy, {summary['handoffs']} handed off (new customers took their "
          f"seats), lost {lost}", flush=True)  # fmt: skip
    result: dict[str, object] = {
        "method": f"stepped ramp over {CAPACITY_CONVERSATIONS} conversations held open",
        "step_seconds": seconds,
        "settle_seconds": settle,
        "steps": rows,
        "turns_per_second": capacity,
        "ramp": {**summary, "lost": lost},
    }
    if overload:  # twice the most it answered in any step, on fresh conversations: well past capacity
        base = max(r["achieved_turns_per_second"] for r in rows)
        print(f"overload: offering twice {base} turns/s", flush=True)
        result["overload"] = capacity_step(stack, 2 * base, seconds)
    return result


if __name__ == "__main__":
    main()
