"""Writes to the knowledge base."""

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from config.errors import DomainError
from config.progress import advance
from knowledge.ingest import Document
from knowledge.models import Article, Category
from tenancy.models import Organization


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
    article.full_clean()
    article.save()
    kb_article_mark_changed(article=article)
    return article, created


def kb_documents_ingest(
    *, organization: Organization, documents: Iterable[Document], publish: bool = True, default_category: str = ""
) -> list[Article]:
    """Store read documents as articles (created or updated by slug), with their category, url
    and tags from the front matter, published unless asked not to. The one ingest loop: the
    kb_ingest command, the demo and any importer call it."""
    articles = []
    for document in documents:
        category_name = document.meta.get("category") or default_category
        article, _ = kb_article_upsert(
            organization=organization,
            title=document.title,
            body=document.body,
            slug=document.slug,
            category=kb_category_ensure(organization=organization, name=category_name) if category_name else None,
            url=document.meta.get("url", ""),
            tags=document.meta.get("tags", ""),
            language=document_language(document),
        )
        if publish:
            kb_article_publish(article=article)
        articles.append(article)
    return articles


@transaction.atomic
def kb_article_publish(*, article: Article) -> Article:
    article.status = Article.Status.PUBLISHED
    article.published_at = article.published_at or timezone.now()
    article.needs_indexing = True
    article.save(update_fields=["status", "published_at", "needs_indexing", "updated_at"])
    kb_article_queue_indexing(article)
    return article


@transaction.atomic
def kb_article_unpublish(*, article: Article) -> Article:
    """Retract an article: it becomes a draft and its passages leave both search legs, so the
    assistant stops citing it as soon as the index task has run."""
    article.status = Article.Status.DRAFT
    article.save(update_fields=["status", "updated_at"])
    kb_article_mark_changed(article=article)
    return article


@transaction.atomic
def kb_article_delete(*, article: Article) -> None:
    """Delete an article and, after commit, its vectors and keyword documents (the chunk rows go
    with the article; the search indexes live outside the database)."""
    from knowledge.tasks import kb_article_purge_task

    organization_id, article_id = article.organization_id, article.pk
    chunk_ids = [str(pk) for pk in article.chunks.values_list("pk", flat=True)]
    article.delete()
    transaction.on_commit(lambda: kb_article_purge_task.delay(organization_id, article_id, chunk_ids))


def kb_article_purge(*, organization_id: int, article_id: int, chunk_ids: list[str]) -> None:
    """Remove a deleted article's passages from the vector store and the keyword index."""
    from knowledge import keyword, vectors

    vectors.delete_article(organization_id, article_id)
    keyword.get_backend().delete(organization_id, keyword.KB, chunk_ids)


@transaction.atomic
def kb_article_index(*, article_id: int) -> int:
    """Bring one article's search index in line with the article; returns its chunk count.

    Harmless to run again: a clean article is left alone, a draft or deleted one is removed."""
    from knowledge import keyword, vectors
    from knowledge.chunking import chunk_article
    from knowledge.models import Chunk

    article = Article.objects.select_for_update().filter(pk=article_id).first()
    if article is None:
        return 0
    if not article.needs_indexing:
        return article.chunks.count()
    backend = keyword.get_backend()
    old_ids = [str(pk) for pk in Chunk.objects.filter(article=article).values_list("pk", flat=True)]
    Chunk.objects.filter(article=article).delete()
    vectors.delete_article(article.organization_id, article.pk)
    backend.delete(article.organization_id, keyword.KB, old_ids)
    count = 0
    if article.status == Article.Status.PUBLISHED:
        passages = chunk_article(title=article.title, body=article.body)
        chunks = Chunk.objects.bulk_create(
            Chunk(article=article, organization_id=article.organization_id, ordinal=n, heading=p.heading, text=p.text)
            for n, p in enumerate(passages)
        )
        vectors.upsert(
            article.organization_id,
            ids=[str(c.pk) for c in chunks],
            texts=[c.text for c in chunks],
            metadatas=[{"article_id": article.pk, "title": article.title} for _ in chunks],
            space=article_vector_space(article),
        )
        backend.upsert(
            article.organization_id, keyword.KB, [(str(c.pk), c.text, {"title": article.title}) for c in chunks]
        )
        count = len(chunks)
    article.needs_indexing = False
    article.save(update_fields=["needs_indexing"])
    return count


def article_vector_space(article: Article) -> str:
    """Chinese articles (by their language, or by their text when it was left at English) are
    indexed in the multilingual space, the others in the English one."""
    from knowledge import keyword, vectors

    chinese = article.language.startswith("zh") or keyword.mostly_chinese(f"{article.title} {article.body}")
    return vectors.MULTILINGUAL if chinese else vectors.EN


def document_language(document: Document) -> str:
    """A read document's language: its front matter's ``language``, else zh or en from its text."""
    from knowledge import keyword

    given = str(document.meta.get("language", "")).strip()
    return given or ("zh" if keyword.mostly_chinese(f"{document.title} {document.body}") else "en")


def kb_reindex(*, organization: Organization, force: bool = False, progress: Any = None) -> dict[str, int]:
    """Index every article of an organization that needs it. With ``force``: every article, and
    every keyword corpus (the knowledge base's and those other apps registered, such as the staff
    desk) is rebuilt from the database; ``<corpus>_documents`` counts what each one holds.
    ``progress`` (config.progress) advances by one per article."""
    from knowledge import keyword

    articles = Article.objects.filter(organization=organization)
    if force:
        articles.update(needs_indexing=True)
    indexed = chunks = 0
    for article_id in articles.filter(needs_indexing=True).values_list("pk", flat=True):
        chunks += kb_article_index(article_id=article_id)
        indexed += 1
        advance(progress)
    totals = {"articles": indexed, "chunks": chunks}
    if force:
        for corpus in keyword.CORPORA:
            totals[f"{corpus}_documents"] = keyword.rebuild(organization.pk, corpus)
    return totals


def kb_articles_to_index(*, organization: Organization, force: bool = False) -> int:
    """How many articles kb_reindex will index (for a progress bar)."""
    articles = Article.objects.filter(organization=organization)
    return articles.count() if force else articles.filter(needs_indexing=True).count()


@transaction.atomic
def kb_article_mark_changed(*, article: Article) -> None:
    """An article's text, status or metadata changed: its index is stale. Indexing is queued
    only where there is something to index or to remove (published now, or chunks from before),
    so a draft written and then published queues one task, not two."""
    Article.objects.filter(pk=article.pk).update(needs_indexing=True)
    article.needs_indexing = True
    if article.status == Article.Status.PUBLISHED or article.chunks.exists():
        kb_article_queue_indexing(article)


def kb_article_queue_indexing(article: Article) -> None:
    from knowledge.tasks import kb_article_index_task

    transaction.on_commit(lambda: kb_article_index_task.delay(article.pk))


@contextmanager
def kb_scratch_organization(
    *, documents: Iterable[Document], name: str
) -> Iterator[tuple[Organization, dict[str, int]]]:
    """A throw-away organization holding these documents as published, indexed articles, for
    the evaluate commands; it and its vectors are deleted afterwards, whatever happens."""
    from knowledge import vectors

    organization = Organization.objects.create(name=name, slug=f"eval-{uuid.uuid4().hex[:10]}")
    try:
        for document in documents:
            article, _ = kb_article_upsert(
                organization=organization,
                title=document.title,
                body=document.body,
                slug=document.slug,
                language=document_language(document),
            )
            kb_article_publish(article=article)
        yield organization, kb_reindex(organization=organization)
    finally:
        vectors.drop_collection(organization.pk)
        organization.delete()
