"""API load: our endpoints against a bare Django view on the same server in the same run.

1. Ceiling: each endpoint as fast as 16 concurrent clients can go for --seconds; throughput
   and p50/p95, each endpoint's throughput as a share of the bare view's, and as a share of
   its minimal twin's (monitoring.bench_views: same token check, same rows, ``values()`` and
   ``JsonResponse``). An endpoint and its twin run in alternating slices (--rounds of each):
   run one after the other, a busy minute on this shared machine once moved a share from 0.5
   to 0.86.
2. Rising rates: ticket list, ticket detail, ticket update (PATCH) and knowledge search mixed,
   sent open-loop at 25, 50, 100 and 200 requests/s; achieved rate, p50/p95/p99, errors
   (a request not answered within 30 s counts as an error).

Production stack on loopback (gunicorn with uvicorn workers, PostgreSQL with fsync on,
Redis), the demo company, token auth. Writes bench/results/api_load.json.

    .venv/bin/python bench/api_load.py [--seconds 15] [--rounds 4] [--rates 25,50,100,200] [--web-workers 2]
"""

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import ProductionStack, percentile, write_result

QUERIES = ["refund", "membership price", "tent warranty", "ski rental", "paypal", "shipping time"]


class Endpoints:
    def __init__(self, stack: ProductionStack) -> None:
        self.base = stack.base_url
        self.headers = {"Authorization": f"Token {stack.api_token}"}
        rows = stack.sql(
            "SELECT t.id FROM tickets_ticket t JOIN tickets_organization o ON o.id = t.organization_id "
            "WHERE o.slug = 'trailhead' AND t.status <> 'closed' ORDER BY t.id"
        )
        self.ticket_ids = [r[0] for r in rows]

    def request(self, name: str) -> tuple[str, str, dict[str, Any] | None]:
        ticket = random.choice(self.ticket_ids)
        if name == "bare":
            return "GET", "/bench/bare", None
        if name == "ticket_list":
            return "GET", "/api/v1/tickets/", None
        if name == "ticket_detail":
            return "GET", f"/api/v1/tickets/{ticket}/", None
        if name == "ticket_update":
            return "PATCH", f"/api/v1/tickets/{ticket}/", {"priority": random.choice(["low", "medium", "high"])}
        if name == "kb_search":
            return "GET", f"/api/v1/kb/search?q={random.choice(QUERIES)}", None
        if name.startswith("min_"):  # the minimal twin of an endpoint: same method, same rows
            method, path, body = self.request(name[4:])
            return method, path.replace("/api/v1/", "/bench/min/"), body
        raise ValueError(name)


async def timed(http: aiohttp.ClientSession, endpoints: Endpoints, name: str) -> tuple[float, int]:
    method, path, body = endpoints.request(name)
    started = time.perf_counter()
    try:
        async with http.request(method, endpoints.base + path, json=body, headers=endpoints.headers) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError):  # refused, reset or not answered within 30 s
        status = 0
    return (time.perf_counter() - started) * 1000, status


async def closed_loop(endpoints: Endpoints, name: str, seconds: float, clients: int = 16) -> dict[str, Any]:
    """``clients`` clients sending ``name`` back to back for ``seconds``: raw latencies."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def client() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                ms, status = await timed(http, endpoints, name)
                latencies.append(ms)
                errors += status >= 400 or status == 0

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {"endpoint": name, "latencies": latencies, "errors": errors, "seconds": elapsed}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = [ms for run in runs for ms in run["latencies"]]
    seconds = sum(run["seconds"] for run in runs)
    return {
        "endpoint": runs[0]["endpoint"],
        "requests": len(latencies),
        "rps": round(len(latencies) / seconds, 1),
        "p50_ms": percentile(latencies, 0.5),
        "p95_ms": percentile(latencies, 0.95),
        "errors": sum(run["errors"] for run in runs),
    }


def ceiling_pair(endpoints: Endpoints, name: str, seconds: float, rounds: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """An endpoint and its minimal twin in alternating slices (``rounds`` of each, ``seconds``
    in all per side), so a busy moment on this shared machine weighs on both alike."""
    ours, twin = [], []
    for _ in range(rounds):
        ours.append(asyncio.run(closed_loop(endpoints, name, seconds / rounds)))
        twin.append(asyncio.run(closed_loop(endpoints, "min_" + name, seconds / rounds)))
    return summarise(ours), summarise(twin)


async def open_loop(endpoints: Endpoints, rate: float, seconds: float) -> dict[str, Any]:
    mix = ["ticket_list", "ticket_detail", "ticket_detail", "ticket_update", "kb_search"]
    results: list[tuple[str, float, int]] = []
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:

        async def one(name: str) -> None:
            ms, status = await timed(http, endpoints, name)
            results.append((name, ms, status))

        tasks = []
        started = time.perf_counter()
        total = int(rate * seconds)
        for n in range(total):
            # Open loop: requests leave on schedule whether or not earlier ones have finished.
            delay = started + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(mix[n % len(mix)])))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    by_endpoint = {}
    for name in sorted(set(mix)):
        values = [ms for n, ms, _ in results if n == name]
        by_endpoint[name] = {"p50_ms": percentile(values, 0.5), "p95_ms": percentile(values, 0.95)}
    latencies = [ms for _, ms, _ in results]
    return {
        "target_rps": rate,
        "achieved_rps": round(len(results) / elapsed, 1),
        "p50_ms": percentile(latencies, 0.5),
        "p95_ms": percentile(latencies, 0.95),
        "p99_ms": percentile(latencies, 0.99),
        "errors": sum(1 for _, _, status in results if status >= 400 or status == 0),
        "by_endpoint": by_endpoint,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rates", default="25,50,100,200")
    parser.add_argument("--rounds", type=int, default=4, help="alternations of an endpoint and its twin")
    parser.add_argument("--web-workers", type=int, default=2)
    args = parser.parse_args()
    with ProductionStack(web_workers=args.web_workers, worker=False) as stack:
        endpoints = Endpoints(stack)
        asyncio.run(closed_loop(endpoints, "ticket_list", 3))  # warm up every worker's caches
        asyncio.run(closed_loop(endpoints, "kb_search", 3))
        ceiling = []
        minimal = {}
        ceiling.append(summarise([asyncio.run(closed_loop(endpoints, "bare", args.seconds))]))
        for name in ("ticket_list", "ticket_detail", "ticket_update", "kb_search"):
            row, minimal[name] = ceiling_pair(endpoints, name, args.seconds, args.rounds)
            ceiling.append(row)
        bare_rps = ceiling[0]["rps"]
        for row in ceiling:
            row["share_of_bare"] = round(row["rps"] / bare_rps, 3) if bare_rps else None
            twin = minimal.get(row["endpoint"])
            if twin is not None:
                row["minimal"] = twin
                row["share_of_minimal"] = round(row["rps"] / twin["rps"], 3) if twin["rps"] else None
            print(f"ceiling {row['endpoint']:<14} {row['rps']:>7} req/s  p50 {row['p50_ms']} ms  p95 {row['p95_ms']} ms"
                  f"  {row['share_of_bare']}x bare  errors {row['errors']}"
                  + (f"  | minimal {twin['rps']} req/s, share {row['share_of_minimal']}" if twin else ""),
                  flush=True)  # fmt: skip
        rates = []
        for rate in (float(r) for r in args.rates.split(",")):
            row = asyncio.run(open_loop(endpoints, rate, args.seconds))
            rates.append(row)
            print(f"rate {rate:>5.0f}/s: achieved {row['achieved_rps']}/s  p50 {row['p50_ms']} ms"
                  f"  p95 {row['p95_ms']} ms  p99 {row['p99_ms']} ms  errors {row['errors']}", flush=True)  # fmt: skip
    path = write_result(
        "api_load",
        {
            "stack": f"gunicorn + {args.web_workers} uvicorn workers, PostgreSQL (fsync on), Redis; "
            "the client on the same machine",
            "seconds_per_step": args.seconds,
            "rounds": args.rounds,
            "ceiling_16_clients": ceiling,
            "rising_rates": rates,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
