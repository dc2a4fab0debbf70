"""The agent's ticket page with a long transcript: server time to render the admin change view
(the workspace) of a ticket whose conversation holds --messages messages (default 500), and
its query count, against the same page with 5 messages. In process, Django's test client, a
throw-away database (SQLite by default; --database-url for PostgreSQL, an empty database you
can lose). Message texts are real customer-service utterances from ../shared/data. Prints the
figures and writes bench/results/ticket_page.json.

    .venv/bin/python bench/ticket_page.py [--messages 500] [--runs 30] [--database-url URL]
"""

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))

from bench.stack import percentile, write_result  # noqa: E402


def texts(limit: int) -> list[str]:
    with (SHARED / "intents" / "bitext_customer_service_8k.csv").open(encoding="utf-8") as handle:
        return [row["text"] for row, _ in zip(csv.DictReader(handle), range(limit), strict=False)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--database-url", default="")
    parser.add_argument(
        "--no-freeze", action="store_true", help="skip gc.freeze() (production workers freeze what they boot with)"
    )
    args = parser.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"{SHARED} is not present: this benchmark reads its texts from ../shared/data.")
    workdir = tempfile.mkdtemp(prefix="concierge-bench-")
    os.environ.update(CONCIERGE_VAR_DIR=workdir, DJANGO_SETTINGS_MODULE="config.settings", ORT_DISABLE_TELEMETRY="1")
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from tenancy.models import Organization, StaffRole
    from tickets import services
    from tickets.models import Message, SentimentRecord

    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    organization = Organization.objects.create(name="Bench", slug=f"bench-{os.getpid()}")
    from tenancy.services import staff_member_create

    user = staff_member_create(
        organization=organization, username=f"agent{os.getpid()}", password=os.urandom(12).hex(), role=StaffRole.AGENT
    )
    customer = services.customer_create(organization=organization, name="Maya", email="maya@example.com")
    lines = texts(args.messages)

    def ticket_with(n: int) -> int:
        conversation = services.conversation_start(customer=customer)
        rows = Message.objects.bulk_create(
            [
                Message(
                    conversation=conversation, role="customer" if i % 2 else "bot", text=lines[i % len(lines)], seq=i
                )
                for i in range(1, n + 1)
            ]
        )
        SentimentRecord.objects.bulk_create(
            [SentimentRecord(message=m, score=0.1, label="neutral") for m in rows if m.role == "customer"]
        )
        conversation.last_seq = n
        conversation.save()
        ticket = services.ticket_create(
            organization=organization, customer=customer, subject="Bench", conversation=conversation
        )
        services.ticket_assign(ticket=ticket, assignee=user)
        return int(ticket.pk)

    client = Client()
    client.force_login(user)
    client.get("/admin/")  # the admin and its templates loaded, as a booted worker has them
    if not args.no_freeze:
        import gc

        gc.freeze()  # as deploy/gunicorn.conf.py does before forking the workers

    def measure(ticket_id: int) -> dict[str, float | int]:
        url = f"/admin/tickets/ticket/{ticket_id}/change/"
        client.get(url)  # warm: templates compiled, the ticket marked seen
        queries: list[str] = []

        def count(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
            queries.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            first = client.get(url)
        if first.status_code != 200:
            sys.exit(f"the ticket page answered {first.status_code}: {first.content[:300]!r}")
        if os.environ.get("BENCH_PROFILE"):
            from pyinstrument import Profiler

            with Profiler() as profiler:
                client.get(url)
            print(profiler.output_text(unicode=False, color=False, show_all=False)[:6000])
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        return {
            "max_ms": round(max(times), 1),
            "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(percentile(times, 0.95), 1),
            "queries": len(queries),
            "bytes": len(response.content),
        }

    small, large = measure(ticket_with(5)), measure(ticket_with(args.messages))
    report = {
        "benchmark": "ticket_page",
        "database": connection.vendor,
        "gc_frozen": not args.no_freeze,
        "messages": args.messages,
        "runs": args.runs,
        "five_messages": small,
        "long_transcript": large,
        "ratio_long_to_five_p50": round(large["p50_ms"] / small["p50_ms"], 2),
        "target_ms": 300,
    }
    print(f"ticket page, {connection.vendor}, {args.runs} runs each")
    print(f"  5 messages      p50 {small['p50_ms']} ms  p95 {small['p95_ms']} ms  queries {small['queries']}")
    print(
        f"  {args.messages} messages    p50 {large['p50_ms']} ms  p95 {large['p95_ms']} ms  max {large['max_ms']} ms"
        f"  queries {large['queries']}"
        f"  ({large['bytes'] // 1024} KiB)"
    )
    print(f"  target: under 300 ms; {'met' if large['p95_ms'] < 300 else 'MISSED'} at p95")
    print(f"wrote {write_result('ticket_page', report)}")


if __name__ == "__main__":
    main()
