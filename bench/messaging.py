"""Messaging webhooks: how fast each provider's webhook answers (the provider waits on it: WeChat
gives up after 5 s, Meta and Telegram retry slow answers), and how long a customer waits from
the webhook to the assistant's reply handed to the provider's API. In process (Django's test
client), the demo knowledge base and intents, loopback servers speaking each provider's API (the
test suite's), a throw-away database (SQLite by default; --database-url for PostgreSQL, an empty
database you can lose). Questions are real customer-service utterances from ../shared/data.

- "webhook": the signature checked, the message stored and the turn queued (not run), as in
  production where a worker takes the turn.
- "to reply": the same request with the turn run in the request (Celery eager), so the time
  until the answer leaves for the provider: webhook + the assistant's turn + the send.

Prints the figures and writes bench/results/messaging.json.

    .venv/bin/python bench/messaging.py [--messages 60] [--database-url URL]
"""

import argparse
import csv
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))

from bench.stack import percentile, write_result  # noqa: E402


def questions(limit: int) -> list[str]:
    with (SHARED / "intents" / "bitext_customer_service_8k.csv").open(encoding="utf-8") as handle:
        rows = [row["text"] for row in csv.DictReader(handle)]
    return rows[:: max(1, len(rows) // limit)][:limit]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=60, help="per provider and mode")
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"{SHARED} is not present: this benchmark reads its questions from ../shared/data.")
    workdir = tempfile.mkdtemp(prefix="concierge-bench-")
    os.environ.update(CONCIERGE_VAR_DIR=workdir, DJANGO_SETTINGS_MODULE="config.settings", ORT_DISABLE_TELEMETRY="1")
    os.environ.update(ANONYMIZED_TELEMETRY="False", CONCIERGE_PUBLIC_URL="https://desk.bench.example")
    os.environ.pop("REDIS_URL", None)
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
    from twilio.request_validator import RequestValidator

    from agents.messaging.accounts import messaging_account_save
    from agents.messaging.api_channel import api_signature
    from agents.messaging.models import MessagingAccount, MessagingRecord
    from agents.services import intent_examples_import, intent_model_train
    from config.celery import app as celery_app
    from demo.company import DEMO_KB_DIR
    from demo.intents import DEMO_INTENTS
    from tenancy.models import Organization
    from tests.agents.messaging import providers

    settings.ALLOWED_HOSTS = ["*"]
    settings.CONCIERGE_RATE_LIMITS = {**settings.CONCIERGE_RATE_LIMITS, "chat_message_session": "100000/min"}
    settings.CONCIERGE_RATE_LIMITS["messaging_send"] = "100000/s"
    settings.CONCIERGE_WECHAT_PASSIVE_SECONDS = 0  # measured without the passive wait
    call_command("migrate", verbosity=0)
    organization = Organization.objects.create(name="Bench Outfitters", slug=f"bench-{os.getpid()}")
    call_command("kb_ingest", str(DEMO_KB_DIR), "--org", organization.slug, verbosity=0)
    intent_examples_import(organization=organization, rows=[(t, i) for i, ts in DEMO_INTENTS.items() for t in ts])
    intent_model_train(organization=organization)

    secret = os.urandom(12).hex()  # every provider's credential in this run
    bot_token = f"1:{secret}"
    graph, bot = providers.graph_api(secret, "100000000000001"), providers.bot_api(bot_token)
    twilio, wechat = providers.twilio_api("AC" + "1" * 32, secret), providers.wechat_api("wxbench", secret)
    app = providers.company_app(secret)
    settings.CONCIERGE_WHATSAPP_API_URL, settings.CONCIERGE_TELEGRAM_API_URL = graph.url, bot.url
    settings.CONCIERGE_TWILIO_API_URL, settings.CONCIERGE_WECHAT_API_URL = twilio.url, wechat.url

    def account(provider: str, sender: str = "", **typed: str) -> MessagingAccount:
        made = MessagingAccount(organization=organization, provider=provider, name=provider, sender_id=sender)
        return messaging_account_save(account=made, typed=typed)

    accounts = {
        "whatsapp": account("whatsapp", "100000000000001", access_token=secret, app_secret=secret),
        "telegram": account("telegram", bot_token=bot_token, webhook_secret=secret),
        "wechat": account("wechat", "gh_bench", app_id="wxbench", app_secret=secret, token=secret),
        "sms": account("sms", "+15005550006", account_sid="AC" + "1" * 32, auth_token=secret),
        "api": account("api", secret=secret, webhook_url=f"{app.url}/concierge"),
    }
    client = Client()
    counter = iter(range(1, 10**9))

    def request(provider: str, text: str) -> dict[str, Any]:
        """The webhook call as the provider makes it: path, body, content type, signed headers."""
        n, acc = next(counter), accounts[provider]
        path = f"/api/v1/messaging/{acc.webhook_key}"
        person = f"{4470000000 + n % 400}"  # 400 people writing, each in their own conversation
        if provider == "whatsapp":
            body = providers.whatsapp_body({"from": person, "id": f"wamid.B{n}", "timestamp": "1", "type": "text",
                                            "text": {"body": text}})  # fmt: skip
            headers = {"HTTP_X_HUB_SIGNATURE_256": providers.whatsapp_signature(secret, body)}
            return {"path": path, "data": body, "content_type": "application/json", **headers}
        if provider == "telegram":
            body = json.dumps(providers.telegram_update(n, text, chat_id=int(person)))
            return {"path": path, "data": body, "content_type": "application/json",
                    "HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN": secret}  # fmt: skip
        if provider == "wechat":
            query = providers.wechat_query(secret)
            url = path + "?" + "&".join(f"{k}={v}" for k, v in query.items())
            return {"path": url, "data": providers.wechat_xml(text, n, openid=f"o{person}"), "content_type": "text/xml"}
        if provider == "sms":
            form = {"MessageSid": f"SM{n}", "From": f"+{person}", "To": "+15005550006", "Body": text, "NumMedia": "0"}
            signature = RequestValidator(secret).compute_signature(f"https://desk.bench.example{path}", form)
            return {"path": path, "data": form, "HTTP_X_TWILIO_SIGNATURE": signature}
        body = json.dumps({"id": f"m{n}", "user": {"id": person}, "text": text}).encode()
        stamp = str(int(time.time()))
        return {"path": path, "data": body, "content_type": "application/json", "HTTP_X_CONCIERGE_TIMESTAMP": stamp,
                "HTTP_X_CONCIERGE_SIGNATURE": api_signature(secret, stamp, body)}  # fmt: skip

    def timed(provider: str, texts: list[str]) -> list[float]:
        times = []
        for text in texts:
            call = request(provider, text)
            started = time.perf_counter()
            response = client.post(**call)
            times.append((time.perf_counter() - started) * 1000)
            if response.status_code >= 300:
                sys.exit(f"{provider} webhook answered {response.status_code}: {response.content[:300]!r}")
        return times

    texts = questions(args.messages)
    timed("api", texts[:5])  # warm: models loaded, templates and URL resolvers ready
    celery_app.conf.task_always_eager = True
    timed("api", texts[:5])
    results: dict[str, Any] = {}
    for provider in accounts:
        celery_app.conf.task_always_eager = False
        webhook = timed(provider, texts)
        celery_app.conf.task_always_eager = True
        before = MessagingRecord.objects.filter(direction="out", status="sent").count()
        to_reply = timed(provider, texts)
        sent = MessagingRecord.objects.filter(direction="out", status="sent").count() - before
        results[provider] = {
            "webhook_p50_ms": round(statistics.median(webhook), 1),
            "webhook_p95_ms": round(percentile(webhook, 0.95) or 0, 1),
            "to_reply_p50_ms": round(statistics.median(to_reply), 1),
            "to_reply_p95_ms": round(percentile(to_reply, 0.95) or 0, 1),
            "replies_sent": sent,
        }
    for server in (graph, bot, twilio, wechat, app):
        server.close()
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]
    report = {"benchmark": "messaging", "database": connection.vendor, "messages": len(texts),
              "questions": f"bitext_customer_service_8k, every {max(1, 8175 // args.messages)}th ({digest})",
              "providers": results}  # fmt: skip
    print(f"{'provider':10} {'webhook p50':>12} {'p95':>8} {'to reply p50':>13} {'p95':>8} {'sent':>5}")
    for provider, row in results.items():
        webhook = f"{row['webhook_p50_ms']:>10.1f}ms {row['webhook_p95_ms']:>6.1f}ms"
        reply = f"{row['to_reply_p50_ms']:>11.1f}ms {row['to_reply_p95_ms']:>6.1f}ms"
        print(f"{provider:10} {webhook} {reply} {row['replies_sent']:>5}")
    print(f"wrote {write_result(f'messaging-{connection.vendor}', report)}")


if __name__ == "__main__":
    main()
