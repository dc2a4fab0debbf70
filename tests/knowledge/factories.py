import factory

from knowledge import services
from knowledge.models import Article
from tests.tenancy.factories import OrganizationFactory


class ArticleFactory(factory.Factory):
    """A draft article made through the knowledge service (as admin and kb_ingest make them).
    ``published=True`` publishes it and indexes it at once (no worker needed)."""

    class Meta:
        model = Article

    organization = factory.SubFactory(OrganizationFactory)
    title = factory.Sequence(lambda n: f"Article {n}")
    body = factory.LazyAttribute(lambda a: f"{a.title} explained in a few words.")
    published = False

    @classmethod
    def _create(cls, model_class, published=False, **kwargs):
        article, _ = services.kb_article_upsert(**kwargs)
        if published:
            services.kb_article_publish(article=article)
            services.kb_article_index(article_id=article.pk)
            article.refresh_from_db()
        return article
