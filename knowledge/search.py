"""Hybrid search: the vector leg (Chroma) and the keyword leg (built-in BM25, or Elasticsearch) fused
by reciprocal rank fusion, one passage per article, with a confidence the agent can use to
decline. Confidence is the best passage's cosine similarity to the query (0..1).

A Chinese question is searched in the multilingual vector space (the Chinese articles, see
knowledge.embeddings) and by jieba's words in the keyword leg; any other in the English space."""

import time
from dataclasses import dataclass, field
from typing import Any

from config.errors import DomainError
from knowledge import embeddings, keyword, vectors
from knowledge.models import Chunk

QUERY_MAX_CHARS = 1000
RRF_K = 60
CANDIDATES = 30


@dataclass(frozen=True)
class SearchHit:
    article_id: int
    chunk_id: int
    title: str
    url: str
    text: str
    score: float
    similarity: float


@dataclass
class SearchResult:
    query: str
    hits: list[SearchHit]
    confidence: float
    timings_ms: dict[str, float] = field(default_factory=dict)


def query_validate(query: str) -> str:
    query = " ".join((query or "").split())
    if not query:
        raise DomainError("The search query is empty.")
    if len(query) > QUERY_MAX_CHARS:
        raise DomainError(f"The search query is longer than {QUERY_MAX_CHARS} characters.")
    return query


@dataclass(frozen=True)
class _Passage:
    """The fields of a chunk and its article that a hit shows (plain rows: searching is on every
    chat turn, and sixty model instances with their signals cost more than the query)."""

    pk: int
    article_id: int
    text: str
    title: str
    url: str


_PASSAGE_FIELDS = ("pk", "article_id", "text", "article__title", "article__url")


def _passages(**filters: Any) -> list[_Passage]:
    return [_Passage(*row) for row in Chunk.objects.filter(**filters).values_list(*_PASSAGE_FIELDS)]


def _body_passage(title_chunk: _Passage, ranked: list[int], chunks: dict[int, _Passage]) -> _Passage:
    """The best-ranked passage of the same article with a body, else its first one."""
    for cid in ranked:
        other = chunks.get(cid)
        if other is not None and other.article_id == title_chunk.article_id and other.pk != title_chunk.pk:
            return other
    first = Chunk.objects.filter(article_id=title_chunk.article_id, ordinal__gt=0).order_by("ordinal")
    rows = list(first.values_list(*_PASSAGE_FIELDS)[:1])
    return _Passage(*rows[0]) if rows else title_chunk


def kb_search(
    *, organization_id: int, query: str, k: int = 5, query_vector: Any = None, language: str | None = None
) -> SearchResult:
    """The k best passages, one per article. ``query_vector`` is the query's English-space
    embedding when the caller has it already (the assistant embeds a message once for intent and
    retrieval); ``language`` the query's, when known ("zh" searches the Chinese articles)."""
    query = query_validate(query)
    if not 1 <= k <= 50:
        raise DomainError("k must be between 1 and 50.")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    chinese = language == "zh" if language else keyword.mostly_chinese(query)
    space = vectors.MULTILINGUAL if chinese else vectors.EN
    if chinese:
        query_vector = embeddings.embed_multilingual([query])[0]
    elif query_vector is None:
        query_vector = embeddings.embed_query(query)
    timings["embed"] = (time.perf_counter() - started) * 1000

    mark = time.perf_counter()
    dense = vectors.query(organization_id, query_vector.tolist(), CANDIDATES, space)
    timings["vector"] = (time.perf_counter() - mark) * 1000
    mark = time.perf_counter()
    sparse = [(int(doc_id), score) for doc_id, score in keyword.search(organization_id, query, CANDIDATES)]
    timings["keyword"] = (time.perf_counter() - mark) * 1000

    mark = time.perf_counter()
    fused: dict[int, float] = {}
    similarity: dict[int, float] = {}
    for rank, (chunk_id, cosine) in enumerate(dense, start=1):
        cid = int(chunk_id)
        fused[cid] = fused.get(cid, 0.0) + 1.0 / (RRF_K + rank)
        similarity[cid] = cosine
    for rank, (cid, _) in enumerate(sparse, start=1):
        fused[cid] = fused.get(cid, 0.0) + 1.0 / (RRF_K + rank)
    ranked = sorted(fused, key=lambda cid: fused[cid], reverse=True)
    chunks = {p.pk: p for p in _passages(pk__in=ranked[: CANDIDATES * 2])}
    hits: list[SearchHit] = []
    seen_articles: set[int] = set()
    for cid in ranked:
        chunk = chunks.get(cid)
        if chunk is None or chunk.article_id in seen_articles:
            continue
        seen_articles.add(chunk.article_id)
        # The title passage finds an article but says nothing: show the article's best body passage.
        passage = chunk if chunk.text != chunk.title else _body_passage(chunk, ranked, chunks)
        hits.append(
            SearchHit(
                article_id=chunk.article_id,
                chunk_id=passage.pk,
                title=chunk.title,
                url=chunk.url,
                text=passage.text,
                score=round(fused[cid], 6),
                similarity=round(similarity.get(cid, 0.0), 4),
            )
        )
        if len(hits) == k:
            break
    timings["fuse"] = (time.perf_counter() - mark) * 1000
    timings["total"] = (time.perf_counter() - started) * 1000
    confidence = max((h.similarity for h in hits[:3]), default=0.0)
    return SearchResult(query=query, hits=hits, confidence=round(confidence, 4), timings_ms=timings)
