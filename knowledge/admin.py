from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from knowledge import services
from knowledge.models import Article, Category
from tenancy.admin_scoping import OrganizationScopedAdmin


@admin.register(Category)
class CategoryAdmin(OrganizationScopedAdmin):
    list_display = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Article)
class ArticleAdmin(OrganizationScopedAdmin):
    list_display = ["title", "category", "status", "language", "needs_indexing", "updated_at"]
    list_filter = ["status", "language", "category"]
    list_select_related = ["category"]
    search_fields = ["title", "body", "tags"]
    prepopulated_fields = {"slug": ["title"]}
    readonly_fields = ["needs_indexing", "published_at", "created_at", "updated_at"]
    actions = ["publish", "unpublish"]

    def save_model(self, request: HttpRequest, obj: Article, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # An edit in admin makes the search index stale, like any other change to an article.
        services.kb_article_mark_changed(article=obj)

    @admin.action(description="Publish selected articles", permissions=["change"])
    def publish(self, request: HttpRequest, queryset: QuerySet[Article]) -> None:
        for article in queryset:
            services.kb_article_publish(article=article)
        self.message_user(request, f"Published {queryset.count()} article(s).")

    @admin.action(description="Unpublish selected articles", permissions=["change"])
    def unpublish(self, request: HttpRequest, queryset: QuerySet[Article]) -> None:
        for article in queryset:
            services.kb_article_unpublish(article=article)
        self.message_user(request, f"Unpublished {queryset.count()} article(s).")

    def delete_model(self, request: HttpRequest, obj: Article) -> None:
        services.kb_article_delete(article=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Article]) -> None:
        for article in queryset:
            services.kb_article_delete(article=article)
