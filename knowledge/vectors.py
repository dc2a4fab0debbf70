"""The vector leg: Chroma, one collection per organization and vector space, cosine, telemetry
off. Two spaces: ``en`` (MiniLM, English articles) and ``multilingual`` (USE multilingual v3,
Chinese articles; see knowledge.embeddings). Nothing else imports chromadb.

Every process that serves or indexes must see the same vectors, so the normal way in is a Chroma
server: CHROMA_HOST in production, or the local server that ``runstack`` starts beside uvicorn
and the Celery worker (it announces itself in ``<CHROMA_PATH>.server``, so a management command
run while the stack is up writes through it too). An embedded persistent client at CHROMA_PATH
is used only when no server is there: one process alone (tests, a command on a stopped stack).
Two processes opening the same folder embedded do not see each other's writes."""

import contextlib
import json
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from django.conf import settings

from config.clients import process_client
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


class MultilingualEmbeddingFunction(MiniLMEmbeddingFunction):
    """The multilingual space's encoder, passed explicitly for the same reason."""

    def __call__(self, input: list[str]) -> Any:
        return list(embeddings.embed_multilingual(list(input)))

    @staticmethod
    def name() -> str:
        return "concierge-use-multilingual-v3"

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> "MultilingualEmbeddingFunction":
        return MultilingualEmbeddingFunction()


EN = "en"
MULTILINGUAL = "multilingual"
SPACES = (EN, MULTILINGUAL)


def space_embed(space: str, texts: list[str]) -> Any:
    """Indexing: the bulk session (a thread per core) for the MiniLM space."""
    return embeddings.embed_multilingual(texts) if space == MULTILINGUAL else embeddings.embed(texts, bulk=True)


# --- where the vectors live --------------------------------------------------------------------


def local_server_file(chroma_path: str | None = None) -> Path:
    """Where a local Chroma server started by ``runstack`` writes its address."""
    return Path(f"{chroma_path or settings.CHROMA_PATH}.server")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def local_server_address(chroma_path: str | None = None) -> str:
    """``host:port`` of the running local server for this folder, or empty."""
    try:
        announced = json.loads(local_server_file(chroma_path).read_text())
        if _pid_alive(int(announced["pid"])):
            return f"{announced['host']}:{int(announced['port'])}"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return ""


def server_address() -> str:
    """The Chroma server this process talks to, or empty for the embedded store."""
    return settings.CHROMA_HOST or local_server_address()


@process_client
def _client(address: str, path: str) -> Any:
    import chromadb
    from chromadb.config import Settings

    chroma_settings = Settings(anonymized_telemetry=False, allow_reset=False)
    if address:
        host, _, port = address.rpartition(":") if ":" in address else (address, "", "8000")
        return chromadb.HttpClient(host=host, port=int(port or 8000), settings=chroma_settings)
    return chromadb.PersistentClient(path=path, settings=chroma_settings)


def get_client() -> Any:
    return _client(server_address(), settings.CHROMA_PATH)


def collection_name(organization_id: int, space: str = EN) -> str:
    return f"kb_org_{organization_id}" if space == EN else f"kb_org_{organization_id}_{space}"


# Collection handles, per store and organization: asking the server for the collection on every
# query would cost a round trip each time. A handle whose collection was dropped (by another
# process too) raises NotFoundError once and is fetched again.
@process_client
def _collection(address: str, path: str, organization_id: int, space: str = EN) -> Any:
    function = MultilingualEmbeddingFunction() if space == MULTILINGUAL else MiniLMEmbeddingFunction()
    return _client(address, path).get_or_create_collection(
        name=collection_name(organization_id, space), embedding_function=function, metadata={"hnsw:space": "cosine"}
    )


def get_collection(organization_id: int, space: str = EN) -> Any:
    return _collection(server_address(), settings.CHROMA_PATH, organization_id, space)


def _on_collection(organization_id: int, work: Any, space: str = EN) -> Any:
    from chromadb.errors import NotFoundError

    try:
        return work(get_collection(organization_id, space))
    except NotFoundError:
        _forget_collection(organization_id, space)
        return work(get_collection(organization_id, space))


def _forget_collection(organization_id: int, space: str = EN) -> None:
    _collection.forget(server_address(), settings.CHROMA_PATH, organization_id, space)


def drop_collection(organization_id: int) -> None:
    """Delete an organization's vectors, every space (tests and throw-away evaluation organizations)."""
    from chromadb.errors import NotFoundError

    for space in SPACES:
        _forget_collection(organization_id, space)
        with contextlib.suppress(NotFoundError, ValueError):  # there was none
            get_client().delete_collection(collection_name(organization_id, space))


def upsert(
    organization_id: int, ids: list[str], texts: list[str], metadatas: list[dict[str, Any]], space: str = EN
) -> None:
    if not ids:
        return
    vectors = [v.tolist() for v in space_embed(space, texts)]
    _on_collection(
        organization_id,
        lambda c: c.upsert(ids=ids, documents=texts, metadatas=metadatas, embeddings=vectors),
        space,
    )


def delete_article(organization_id: int, article_id: int) -> None:
    for space in SPACES:
        _on_collection(organization_id, lambda c: c.delete(where={"article_id": article_id}), space)


def query(organization_id: int, query_vector: list[float], k: int, space: str = EN) -> list[tuple[str, float]]:
    """(chunk id, cosine similarity) best first."""
    result = _on_collection(
        organization_id,
        lambda c: c.query(query_embeddings=[query_vector], n_results=k, include=["distances"]),
        space,
    )
    return [(cid, 1.0 - float(dist)) for cid, dist in zip(result["ids"][0], result["distances"][0], strict=True)]


def count(organization_id: int, space: str | None = None) -> int:
    """Vectors in one space, or in all of them."""
    spaces = SPACES if space is None else (space,)
    return sum(int(_on_collection(organization_id, lambda c: c.count(), each)) for each in spaces)


def ping() -> str:
    """Chroma answers (server heartbeat, or the local store opens)."""
    client = get_client()
    client.heartbeat()
    address = server_address()
    return f"server {address}" if address else f"local {settings.CHROMA_PATH}"


def warm() -> None:
    """Open the store and load the model before the first customer asks."""
    ping()
    embeddings.embed(["warm up"])
    embeddings.embed_multilingual(["warm up"])
