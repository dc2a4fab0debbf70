"""Hybrid search latency at N chunks (default 5,000) on this machine.

Passages are real, distinct texts read from ../shared/data (customer-service utterances);
queries are StackFAQ dev questions. Runs against a throw-away SQLite database and Chroma
folder, prints p50/p95/p99 per leg and end to end, and writes bench/results/knowledge_search_<chunks>.json.

    .venv/bin/python bench/knowledge_search.py [--chunks 5000] [--queries 300]
"""

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def passages(limit: int) -> list[str]:
    seen: dict[str, None] = {}
    sources = (
        "intents/bitext_customer_service_8k.csv",
        "intents/clinc150_train.csv",
        "intents/banking77_train.csv",
        "sentiment/semeval_2013_2016_train.csv",
        "sentiment/sst2_train.csv",
    )
    for name in sources:
        with (SHARED / name).open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                text = (row.get("text") or "").strip()
                if text:
                    seen.setdefault(text)
                if len(seen) >= limit:
                    return list(seen)
    return list(seen)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=5000)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"{SHARED} is not present: this benchmark reads its texts from ../shared/data.")

    workdir = tempfile.mkdtemp(prefix="concierge-bench-")
    os.environ.update(CONCIERGE_VAR_DIR=workdir, DJANGO_SETTINGS_MODULE="config.settings", ORT_DISABLE_TELEMETRY="1")
    os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    from knowledge import keyword, vectors
    from knowledge.models import Article, Chunk
    from knowledge.search import kb_search
    from tenancy.models import Organization

    call_command("migrate", verbosity=0)
    keyword_backend = keyword.get_backend().name
    organization = Organization.objects.create(name="Bench", slug="bench")
    texts = passages(args.chunks)
    article = Article.objects.create(
        organization=organization, title="Bench", slug="bench", body="-", status="published"
    )
    started = time.perf_counter()
    chunks = Chunk.objects.bulk_create(
        Chunk(article=article, organization=organization, ordinal=n, text=text) for n, text in enumerate(texts)
    )
    for start in range(0, len(chunks), 500):
        batch = chunks[start : start + 500]
        vectors.upsert(
            organization.pk,
            ids=[str(c.pk) for c in batch],
            texts=[c.text for c in batch],
            metadatas=[{"article_id": article.pk, "title": "Bench"} for _ in batch],
        )
    index_seconds = time.perf_counter() - started

    with (SHARED / "retrieval" / "stackfaq_dev_queries.csv").open(encoding="utf-8") as handle:
        questions = [row["query"] for row in csv.DictReader(handle)][: args.queries]
    kb_search(organization_id=organization.pk, query="warm up the model and the keyword index")
    legs: dict[str, list[float]] = {}
    for question in questions:
        result = kb_search(organization_id=organization.pk, query=question, k=5)
        for leg, ms in result.timings_ms.items():
            legs.setdefault(leg, []).append(ms)

    figures = {
        leg: {
            "p50_ms": round(statistics.median(v), 2),
            "p95_ms": round(percentile(v, 0.95), 2),
            "p99_ms": round(percentile(v, 0.99), 2),
        }
        for leg, v in legs.items()
    }
    report = {
        "benchmark": "knowledge_search",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "chunks": len(chunks),
        "queries": len(questions),
        "index_seconds": round(index_seconds, 1),
        "embedding_chunks_per_second": round(len(chunks) / index_seconds, 1),
        "latency": figures,
        "backend": {"vectors": "chroma (persistent, hnsw cosine)", "keyword": keyword_backend},
        "target": "p95 total under 25 ms at 5,000 chunks",
        "target_met": figures["total"]["p95_ms"] < 25 if len(chunks) <= 5000 else None,
    }
    out = ROOT / "bench" / "results" / f"knowledge_search_{len(chunks)}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
