"""Elasticsearch keyword backend (official client): one BM25 index per organization and
corpus, named ``<ELASTICSEARCH_INDEX_PREFIX>-<corpus>-<organization id>``. Nothing else
imports the elasticsearch package."""

from typing import Any

from django.conf import settings

_MAPPINGS = {"properties": {"text": {"type": "text"}, "title": {"type": "text"}, "kind": {"type": "keyword"}}}


class ElasticsearchBackend:
    name = "elasticsearch"

    def __init__(self, url: str) -> None:
        from elasticsearch import Elasticsearch

        # Made once per process by keyword.get_backend; the client object itself is thread-safe.
        self.url = url
        self.client = Elasticsearch(url, request_timeout=5, retry_on_timeout=True, max_retries=2)

    def index_name(self, organization_id: int, corpus: str) -> str:
        return f"{settings.ELASTICSEARCH_INDEX_PREFIX}-{corpus}-{organization_id}"

    def _ensure(self, index: str) -> None:
        if not self.client.indices.exists(index=index):
            self.client.options(ignore_status=400).indices.create(index=index, mappings=_MAPPINGS)

    def search(self, organization_id: int, corpus: str, query: str, k: int) -> list[tuple[str, float]]:
        index = self.index_name(organization_id, corpus)
        if not self.client.indices.exists(index=index):
            return []
        response = self.client.search(
            index=index, query={"multi_match": {"query": query, "fields": ["text", "title^2"]}}, size=k, source=False
        )
        return [(hit["_id"], float(hit["_score"])) for hit in response["hits"]["hits"]]

    def upsert(self, organization_id: int, corpus: str, documents: list[tuple[str, str, dict[str, Any]]]) -> None:
        if not documents:
            return
        from elasticsearch.helpers import bulk

        index = self.index_name(organization_id, corpus)
        self._ensure(index)
        actions = [{"_index": index, "_id": doc_id, "text": text, **fields} for doc_id, text, fields in documents]
        bulk(self.client, actions, refresh=True)

    def delete(self, organization_id: int, corpus: str, ids: list[str]) -> None:
        index = self.index_name(organization_id, corpus)
        if not ids or not self.client.indices.exists(index=index):
            return
        from elasticsearch.helpers import bulk

        actions = [{"_op_type": "delete", "_index": index, "_id": doc_id} for doc_id in ids]
        bulk(self.client, actions, refresh=True, raise_on_error=False)

    def rebuild(self, organization_id: int, corpus: str, rows: list[tuple[str, str]]) -> int:
        index = self.index_name(organization_id, corpus)
        self.client.options(ignore_status=404).indices.delete(index=index)
        self._ensure(index)
        self.upsert(organization_id, corpus, [(doc_id, text, {}) for doc_id, text in rows])
        return len(rows)

    def size(self, organization_id: int, corpus: str) -> int:
        index = self.index_name(organization_id, corpus)
        if not self.client.indices.exists(index=index):
            return 0
        return int(self.client.count(index=index)["count"])

    def ping(self) -> bool:
        return bool(self.client.ping())
