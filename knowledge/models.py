"""Knowledge-base articles the agent answers from. Indexing (chunks, vectors, keywords)
builds on these rows; ``needs_indexing`` marks an article whose index is stale."""

from django.db import models

from tenancy.models import Organization


class Category(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="kb_categories")
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"
        constraints = [models.UniqueConstraint(fields=["organization", "slug"], name="kb_category_unique_slug")]

    def __str__(self) -> str:
        return self.name


class Article(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="kb_articles")
    category = models.ForeignKey(Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="articles")
    title = models.CharField(max_length=250)
    slug = models.SlugField(max_length=250)
    body = models.TextField(help_text="Markdown.")
    language = models.CharField(max_length=10, default="en")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    tags = models.CharField(max_length=250, blank=True, help_text="Comma-separated.")
    url = models.URLField(blank=True, help_text="Public address of the article, cited in answers.")
    external_id = models.CharField(max_length=100, blank=True)
    needs_indexing = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["title"]
        constraints = [models.UniqueConstraint(fields=["organization", "slug"], name="kb_article_unique_slug")]

    def __str__(self) -> str:
        return self.title


class Chunk(models.Model):
    """One passage of a published article, as indexed for search (bookkeeping for both legs)."""

    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="chunks")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="kb_chunks")
    ordinal = models.PositiveIntegerField()
    heading = models.CharField(max_length=250, blank=True)
    text = models.TextField(help_text="Title and heading path, then the passage: what is embedded and searched.")

    class Meta:
        ordering = ["article", "ordinal"]
        constraints = [models.UniqueConstraint(fields=["article", "ordinal"], name="kb_chunk_unique_ordinal")]

    def __str__(self) -> str:
        return f"{self.article.title} #{self.ordinal}"
