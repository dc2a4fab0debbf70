from typing import Any

from django.core.management.base import BaseCommand, CommandError

from config.errors import DomainError
from knowledge.search import kb_search
from tenancy.management.options import organization_option


class Command(BaseCommand):
    help = "Hybrid search of the knowledge base; prints passages with title, url and scores."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("query")
        parser.add_argument("--k", type=int, default=5)
        parser.add_argument("--org", help="Organization slug (default: the first).")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = organization_option(options["org"])
        try:
            result = kb_search(organization_id=organization.pk, query=options["query"], k=options["k"])
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"confidence {result.confidence:.3f}  ({result.timings_ms['total']:.1f} ms)")
        for rank, hit in enumerate(result.hits, start=1):
            snippet = " ".join(hit.text.split())[:160]
            self.stdout.write(
                f"{rank}. {hit.title}  [{hit.url or 'no url'}]  score={hit.score:.4f} cos={hit.similarity:.3f}"
            )
            self.stdout.write(f"   {snippet}")
