"""The API's django-filter backend, skipped where it cannot change the rows.

django-filter builds and validates a form on every request, parameters or not: a fifth of a
ticket list's time when nothing is filtered, and again on every one-object request (DRF runs
the list's filters in ``get_object``). A request that names none of the filterset's parameters
gets the queryset as it is; one that names any goes through django-filter unchanged, errors
(400 with the field's message) included. One object's URLs are never filtered."""

from typing import Any

from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend


class QueryFilterBackend(DjangoFilterBackend):
    def filter_queryset(self, request: Any, queryset: QuerySet[Any], view: Any) -> QuerySet[Any]:
        if getattr(view, "detail", False):
            return queryset
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is None:
            return queryset
        names = filterset_class.base_filters
        # A filter whose widget takes several parameters names them <filter>_<suffix>.
        if not any(key in names or key.rpartition("_")[0] in names for key in request.query_params):
            return queryset
        return super().filter_queryset(request, queryset, view)
