"""Writes to the knowledge base."""

from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from knowledge.models import Article, Category
from tickets.errors import DomainError
from tickets.models import Organization


@transaction.atomic
def kb_category_ensure(*, organization: Organization, name: str) -> Category:
    category, _ = Category.objects.get_or_create(
        organization=organization, slug=slugify(name)[:100], defaults={"name": name}
    )
    return category


@transaction.atomic
def kb_article_upsert(
    *,
    organization: Organization,
    title: str,
    body: str,
    category: Category | None = None,
    slug: str = "",
    **fields: Any,
) -> tuple[Article, bool]:
    """Create or update the article with this slug (from the title when not given)."""
    title = (title or "").strip()
    if not title or not (body or "").strip():
        raise DomainError("An article needs a title and a body.")
    slug = slugify(slug or title)[:250]
    if not slug:
        raise DomainError(f"Cannot derive an address from the title {title!r}.")
    article, created = Article.objects.get_or_create(
        organization=organization, slug=slug, defaults={"title": title, "body": body}
    )
    article.title, article.body, article.category = title, body, category
    for name, value in fields.items():
        setattr(article, name, value)
    article.needs_indexing = True
    article.full_clean()
    article.save()
    return article, created


@transaction.atomic
def kb_article_publish(*, article: Article) -> Article:
    article.status = Article.Status.PUBLISHED
    article.published_at = article.published_at or timezone.now()
    article.needs_indexing = True
    article.save(update_fields=["status", "published_at", "needs_indexing", "updated_at"])
    return article
