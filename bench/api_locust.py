"""Locust against the production stack on loopback: starts the stack (bench/stack.py), runs
bench/locustfile.py headless with the stepped and then the spike shape (a minute each), and
prints and writes each shape's throughput, p50/p95, error rate and whether it met p95 under
200 ms and errors under 0.1%. Writes bench/results/api_locust.json. Needs Locust
(`.venv/bin/pip install -r requirements-bench.txt`).

    .venv/bin/python bench/api_locust.py [--shapes step,spike]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import ROOT, ProductionStack, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="step,spike")
    parser.add_argument("--web-workers", type=int, default=2)
    args = parser.parse_args()
    locust = shutil.which("locust", path=str(Path(sys.executable).parent))
    if locust is None:
        sys.exit("Locust is not installed: .venv/bin/pip install -r requirements-bench.txt")
    results = []
    with ProductionStack(web_workers=args.web_workers, worker=False) as stack:
        tickets = [
            str(r[0])
            for r in stack.sql(
                "SELECT t.id FROM tickets_ticket t JOIN tickets_organization o ON o.id = t.organization_id "
                "WHERE o.slug = 'trailhead' AND t.status <> 'closed' ORDER BY t.id"
            )
        ]  # fmt: skip (the API token's organization)
        for shape in args.shapes.split(","):
            out = Path(tempfile.mkdtemp()) / "locust.json"
            env = {**os.environ, "LOCUST_SHAPE": shape, "LOCUST_RESULT": str(out),
                   "CONCIERGE_API_TOKEN": stack.api_token, "CONCIERGE_WIDGET_KEY": stack.widget_key,
                   "CONCIERGE_TICKET_IDS": ",".join(tickets)}  # fmt: skip
            done = subprocess.run(
                [locust, "-f", str(ROOT / "bench" / "locustfile.py"), "--headless", "--host", stack.base_url,
                 "--only-summary", "--loglevel", "WARNING"],
                env=env, cwd=ROOT, capture_output=True, text=True, timeout=240,
            )  # fmt: skip
            if not out.exists():
                sys.exit(f"locust ({shape}) wrote no result: {done.stderr[-2000:]}")
            row = json.loads(out.read_text())
            results.append(row)
            print(f"{shape:>5}: {row['requests']} requests, {row['rps']} req/s, p50 {row['p50_ms']} ms, "
                  f"p95 {row['p95_ms']} ms, errors {row['error_rate']:.3%} -> "
                  f"{'met' if row['passed'] else 'MISSED'} (p95 < 200 ms, errors < 0.1%)", flush=True)  # fmt: skip
    path = write_result("api_locust", {"stack": f"gunicorn + {args.web_workers} uvicorn workers", "shapes": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
