"""CPU a chat turn costs on the production stack at a fixed load below capacity: the user + system
time (from /proc) of the web workers, the stack's PostgreSQL and Redis, and the load client, over
windows in which N conversations ask R turns a second in all, divided by the turns answered. The
capacity steps (chat_load.py) swing with the machine's other work; the CPU a turn costs moves far
less, so two checkouts compare best by this figure, run one after the other (or alternating) on
the same machine. Each window includes its conversations opening their websockets (not their
sessions: those open before). Writes bench/results/chat_cpu.json.

    .venv/bin/python bench/chat_cpu.py [--conversations 300] [--rate 40] [--seconds 40] [--rounds 2]
"""

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.chatload import LoadStats, converse, open_sessions, run
from bench.stack import ProductionStack, write_result

TICK = os.sysconf("SC_CLK_TCK")
RAMP = 5.0


def cpu_seconds(pids: list[int]) -> float:
    """User + system time of these processes so far (those gone since count nothing)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


async def window(stack: ProductionStack, stats: LoadStats, rate: float, seconds: float) -> None:
    count = len(stats.conversations)
    think = count / rate
    stats.until = time.monotonic() + RAMP + seconds
    await asyncio.gather(
        *(
            converse(
                stack.base_url, c, until=stats.until, think=(0.5 * think, 1.5 * think), start_after=RAMP * n / count
            )
            for n, c in enumerate(stats.conversations)
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=300)
    parser.add_argument("--rate", type=float, default=40.0, help="turns a second asked in all")
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rounds = []
    with ProductionStack(web_workers=2) as stack:
        time.sleep(3)
        for n in range(args.rounds):
            stats = LoadStats(conversations=run(open_sessions(stack.base_url, stack.widget_key, args.conversations)))
            services = stack.service_pids()
            web_pids, pg_pids, redis_pids = stack.web_pids(), services["postgres"], services["redis"]
            web, pg, redis = cpu_seconds(web_pids), cpu_seconds(pg_pids), cpu_seconds(redis_pids)
            client, started = time.process_time(), time.perf_counter()
            run(window(stack, stats, args.rate, args.seconds))
            elapsed, client = time.perf_counter() - started, time.process_time() - client
            web, pg, redis = cpu_seconds(web_pids) - web, cpu_seconds(pg_pids) - pg, cpu_seconds(redis_pids) - redis
            summary = stats.summary()
            turns = summary["bot_replies"]
            row = {
                "turns": turns,
                "turns_per_second": round(turns / elapsed, 1),
                "web_cpu_ms_per_turn": round(web / max(1, turns) * 1000, 2),
                "postgres_cpu_ms_per_turn": round(pg / max(1, turns) * 1000, 2),
                "redis_cpu_ms_per_turn": round(redis / max(1, turns) * 1000, 2),
                "load_client_cpu_ms_per_turn": round(client / max(1, turns) * 1000, 2),
                "turn_ms": summary["turn_ms"],
                "errors": summary["errors"],
                "refused_busy": summary["refused_busy"],
            }
            rounds.append(row)
            print(f"round {n + 1}: {turns} turns at {row['turns_per_second']}/s; web workers "
                  f"{row['web_cpu_ms_per_turn']} ms CPU a turn, PostgreSQL {row['postgres_cpu_ms_per_turn']} ms, "
                  f"Redis {row['redis_cpu_ms_per_turn']} ms, "
                  f"the load client {row['load_client_cpu_ms_per_turn']} ms; "
                  f"turn p50 {summary['turn_ms']['p50']} ms p95 {summary['turn_ms']['p95']} ms, errors "
                  f"{summary['errors']}, refused busy {summary['refused_busy']}", flush=True)  # fmt: skip
    result = {
        "conversations": args.conversations,
        "rate": args.rate,
        "seconds": args.seconds,
        "rounds": rounds,
        "web_cpu_ms_per_turn_median": round(statistics.median(r["web_cpu_ms_per_turn"] for r in rounds), 2),
        "postgres_cpu_ms_per_turn_median": round(statistics.median(r["postgres_cpu_ms_per_turn"] for r in rounds), 2),
    }
    print(f"median: web workers {result['web_cpu_ms_per_turn_median']} ms, PostgreSQL "
          f"{result['postgres_cpu_ms_per_turn_median']} ms CPU a turn", flush=True)  # fmt: skip
    print(f"wrote {write_result('chat_cpu', result)}")


if __name__ == "__main__":
    main()
