"""The vector leg: Chroma, one collection per organization, cosine space, telemetry off.
A persistent client at CHROMA_PATH, or a server at CHROMA_HOST. Nothing else imports chromadb."""

import os
from functools import lru_cache
from typing import Any

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from django.conf import settings

from knowledge import embeddings


class MiniLMEmbeddingFunction:
    """Chroma embedding function backed by our offline MiniLM; always passed explicitly so
    Chroma never reaches for its default (downloaded) model."""

    def __call__(self, input: list[str]) -> Any:
        return list(embeddings.embed(list(input)))

    def embed_query(self, input: list[str]) -> Any:
        return self(input)

    @staticmethod
    def name() -> str:
        return "concierge-minilm-int8"

    def is_legacy(self) -> bool:
        return False

    def get_config(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> "MiniLMEmbeddingFunction":
        return MiniLMEmbeddingFunction()

    def default_space(self) -> str:
        return "cosine"

    def supported_spaces(self) -> list[str]:
        return ["cosine"]


@lru_cache(maxsize=1)
def get_client() -> Any:
    import chromadb
    from chromadb.config import Settings

    chroma_settings = Settings(anonymized_telemetry=False, allow_reset=False)
    if settings.CHROMA_HOST:
        host, _, port = settings.CHROMA_HOST.partition(":")
        return chromadb.HttpClient(host=host, port=int(port or 8000), settings=chroma_settings)
    return chromadb.PersistentClient(path=settings.CHROMA_PATH, settings=chroma_settings)


def collection_name(organization_id: int) -> str:
    return f"kb_org_{organization_id}"


def get_collection(organization_id: int) -> Any:
    return get_client().get_or_create_collection(
        name=collection_name(organization_id),
        embedding_function=MiniLMEmbeddingFunction(),
        metadata={"hnsw:space": "cosine"},
    )


def upsert(organization_id: int, ids: list[str], texts: list[str], metadatas: list[dict[str, Any]]) -> None:
    if not ids:
        return
    vectors = embeddings.embed(texts)
    get_collection(organization_id).upsert(
        ids=ids, documents=texts, metadatas=metadatas, embeddings=[v.tolist() for v in vectors]
    )


def delete_article(organization_id: int, article_id: int) -> None:
    get_collection(organization_id).delete(where={"article_id": article_id})


def query(organization_id: int, query_vector: list[float], k: int) -> list[tuple[str, float]]:
    """(chunk id, cosine similarity) best first."""
    collection = get_collection(organization_id)
    if collection.count() == 0:
        return []
    result = collection.query(query_embeddings=[query_vector], n_results=min(k, collection.count()))
    return [(cid, 1.0 - float(dist)) for cid, dist in zip(result["ids"][0], result["distances"][0], strict=True)]


def count(organization_id: int) -> int:
    return int(get_collection(organization_id).count())


def ping() -> str:
    """Chroma answers (server heartbeat, or the local store opens)."""
    client = get_client()
    client.heartbeat()
    return f"server {settings.CHROMA_HOST}" if settings.CHROMA_HOST else f"local {settings.CHROMA_PATH}"
