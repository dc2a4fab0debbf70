import csv
import statistics
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from config.errors import DomainError
from knowledge.ingest import documents_read
from knowledge.models import Article
from knowledge.search import kb_search
from knowledge.services import kb_scratch_organization


class Command(BaseCommand):
    help = (
        "Measure retrieval on articles (a JSONL of id,title,body, or a folder of articles named by file) and a CSV "
        "of queries (query,article_id): "
        "prints top-1, MRR@10, recall@5 and query latency. Uses a throw-away organization."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--articles", required=True)
        parser.add_argument("--queries", required=True)
        parser.add_argument("--limit", type=int, default=0, help="Only the first N queries.")

    def handle(self, *args: Any, **options: Any) -> None:
        articles_path, queries_path = Path(options["articles"]), Path(options["queries"])
        for path in (articles_path, queries_path):
            if not path.exists():
                raise CommandError(f"{path}: no such file.")
        try:
            documents = documents_read(articles_path)
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
        with queries_path.open(encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"query", "article_id"} <= set(reader.fieldnames):
                raise CommandError(f"{queries_path}: needs the columns query,article_id.")
            queries = [(row["query"], slugify(row["article_id"])) for row in reader]
        if options["limit"]:
            queries = queries[: options["limit"]]

        started = time.perf_counter()
        with kb_scratch_organization(documents=documents, name="Retrieval evaluation") as (organization, totals):
            index_seconds = time.perf_counter() - started
            slugs = dict(Article.objects.filter(organization=organization).values_list("pk", "slug"))
            ranks, latencies = [], []
            for text, expected in queries:
                began = time.perf_counter()
                result = kb_search(organization_id=organization.pk, query=text, k=10)
                latencies.append((time.perf_counter() - began) * 1000)
                found = [slugs[hit.article_id] for hit in result.hits]
                ranks.append(found.index(expected) + 1 if expected in found else None)

        n = len(ranks)
        top1 = sum(r == 1 for r in ranks) / n
        mrr = sum(1 / r for r in ranks if r) / n
        recall5 = sum(1 for r in ranks if r and r <= 5) / n
        latencies.sort()
        p95 = latencies[min(n - 1, int(0.95 * n))]
        self.stdout.write(
            f"articles {len(documents)} ({totals['chunks']} chunks, indexed in {index_seconds:.1f} s), queries {n}\n"
            f"top-1 {top1:.3f}  MRR@10 {mrr:.3f}  recall@5 {recall5:.3f}\n"
            f"latency ms: p50 {statistics.median(latencies):.1f}  p95 {p95:.1f}"
        )
