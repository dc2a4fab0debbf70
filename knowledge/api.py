"""Knowledge-base API: /api/v1/kb/articles/ (read; staff of the organization) and
/api/v1/kb/search?q= (hybrid search with citations and confidence)."""

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from knowledge.models import Article
from knowledge.search import kb_search
from tenancy.permissions import IsOrganizationStaff
from tenancy.services import staff_organization


class ArticleSerializer(serializers.ModelSerializer):
    category = serializers.CharField(source="category.name", default=None, read_only=True)

    class Meta:
        model = Article
        fields = ["id", "title", "slug", "body", "language", "status", "tags", "url", "category", "updated_at"]
        read_only_fields = fields


class SearchHitSerializer(serializers.Serializer):
    article_id = serializers.IntegerField()
    title = serializers.CharField()
    url = serializers.CharField()
    text = serializers.CharField()
    score = serializers.FloatField()
    similarity = serializers.FloatField()


class SearchResultSerializer(serializers.Serializer):
    query = serializers.CharField()
    confidence = serializers.FloatField()
    hits = SearchHitSerializer(many=True)
    timings_ms = serializers.DictField(child=serializers.FloatField())


class ArticleViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = ArticleSerializer
    filterset_fields = ["status", "language", "category"]
    search_fields = ["title", "body", "tags"]
    queryset = Article.objects.none()

    def get_queryset(self) -> QuerySet[Article]:
        return Article.objects.filter(organization=staff_organization(self.request.user)).select_related("category")


class SearchView(APIView):
    permission_classes = [IsOrganizationStaff]

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, required=True, description="The question, up to 1,000 characters."),
            OpenApiParameter("k", int, required=False, description="Passages to return, 1-50 (default 5)."),
        ],
        responses=SearchResultSerializer,
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        k = request.query_params.get("k", "5")
        if not k.isdigit():
            return Response({"k": ["A whole number from 1 to 50."]}, status=400)
        organization = staff_organization(request.user)
        assert organization is not None  # IsOrganizationStaff let the request through
        result = kb_search(organization_id=organization.pk, query=request.query_params.get("q", ""), k=int(k))
        return Response(SearchResultSerializer(result).data)
