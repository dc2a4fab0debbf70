from typing import Any

from django.core.management.base import BaseCommand, CommandError

from knowledge.models import Article
from knowledge.services import (
    kb_article_delete,
    kb_article_index,
    kb_article_publish,
    kb_article_purge,
    kb_article_unpublish,
)
from tenancy.management.options import organization_option


class Command(BaseCommand):
    help = "Publish, unpublish or delete one knowledge-base article; the search indexes follow at once."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("action", choices=["publish", "unpublish", "delete"])
        parser.add_argument("slug", help="The article's slug.")
        parser.add_argument("--org", help="Organization slug (default: the first).")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = organization_option(options["org"])
        article = Article.objects.filter(organization=organization, slug=options["slug"]).first()
        if article is None:
            raise CommandError(f"No article with slug {options['slug']!r} in {organization.name}.")
        action = options["action"]
        if action == "delete":
            chunk_ids = [str(pk) for pk in article.chunks.values_list("pk", flat=True)]
            article_id = article.pk
            kb_article_delete(article=article)
            # The worker purges too (queued by the service); doing it here makes the command's effect immediate.
            kb_article_purge(organization_id=organization.pk, article_id=article_id, chunk_ids=chunk_ids)
            self.stdout.write(f"Deleted {options['slug']!r} and its {len(chunk_ids)} passage(s) from the indexes.")
            return
        if action == "publish":
            kb_article_publish(article=article)
        else:
            kb_article_unpublish(article=article)
        # The worker indexes it too (queued by the service); indexing here makes the effect immediate,
        # and the worker's run then finds the article clean and leaves it.
        chunks = kb_article_index(article_id=article.pk)
        self.stdout.write(f"{action.capitalize()}ed {options['slug']!r}; {chunks} passage(s) in the indexes.")
