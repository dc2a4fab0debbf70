from django.urls import path
from rest_framework.routers import DefaultRouter

from knowledge.api import ArticleViewSet, SearchView

router = DefaultRouter(trailing_slash="/?")  # type: ignore[arg-type]
router.include_root_view = False
router.register("kb/articles", ArticleViewSet, basename="kb-article")

urlpatterns = [path("kb/search", SearchView.as_view(), name="kb-search"), *router.urls]
