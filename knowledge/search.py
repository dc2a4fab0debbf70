"""Hybrid search: the vector leg (Chroma) and the keyword leg (built-in BM25, or Elasticsearch) fused
per article (cosine similarity plus a tenth of the keyword score, see KEYWORD_WEIGHT), one passage
per article, with a confidence the agent can use to decline. Confidence is the best article's
cosine similarity to the query (0..1).

A Chinese question is searched in the multilingual vector space (the Chinese articles, see
knowledge.embeddings) and by jieba's words in the keyword leg; any other in the English space."""

import time
from dataclasses import dataclass, field
from typing import Any

from django.db import DEFAULT_DB_ALIAS
from django.db.models import F

from config.compiled import AnyOf, CompiledQuery
from config.errors import DomainError
from knowledge import embeddings, keyword, vectors
from knowledge.models import Chunk

QUERY_MAX_CHARS = 1000
CANDIDATES = 30
# An article's score is its best passage's cosine similarity to the question plus this much of its
# best keyword score (as a share of the question's best): the vector leg carries the meaning, the
# keyword leg adds exact terms and breaks ties. Reciprocal rank fusion, which we used before, gave
# the keyword leg an equal vote and put the wrong StackFAQ article first twice as often (dev split:
# top-1 0.917 with RRF, 0.963 like this; chosen on one half of dev, the other half agreed).
KEYWORD_WEIGHT = 0.1


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


# The passages a search found, read every chat turn, by their ids: the SQL is built once per
# process (config.compiled; building it took ~0.6 ms of a turn's CPU, running it ~0.1 ms), the ids
# one parameter however many there are.
_PASSAGES = CompiledQuery(
    lambda organization_id, ids: Chunk.objects.filter(AnyOf(F("pk"), ids), organization_id=organization_id).values_list(
        *_PASSAGE_FIELDS
    ),
    organization_id=int,
    ids=list,
)


def _passages(*, ids: list[int], organization_id: int) -> list[_Passage]:
    """These passages, where they are this organization's, with their article's title and URL."""
    if not ids:
        return []
    rows = _PASSAGES.tuples(DEFAULT_DB_ALIAS, organization_id=organization_id, ids=list(dict.fromkeys(ids)))
    return [_Passage(*row) for row in rows]


def _body_passage(title_chunk: _Passage) -> _Passage:
    """An article found by its title alone: its first passage with a body."""
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
    cosine = {int(cid): float(value) for cid, value in dense}
    # A chunk the vector leg did not return is at most as close as the last one it did.
    floor = min(cosine.values(), default=0.0)
    best_keyword = max((score for _, score in sparse), default=0.0) or 1.0
    keyword_share = {cid: score / best_keyword for cid, score in sparse}
    # Only this organization's passages, whatever a vector collection still holds.
    chunks = _passages(ids=sorted(cosine.keys() | keyword_share.keys()), organization_id=organization_id)
    chunk_score = {p.pk: cosine.get(p.pk, floor) + KEYWORD_WEIGHT * keyword_share.get(p.pk, 0.0) for p in chunks}
    article_cosine: dict[int, float] = {}
    article_keyword: dict[int, float] = {}
    best_chunk: dict[int, _Passage] = {}
    for p in sorted(chunks, key=lambda p: chunk_score[p.pk], reverse=True):
        article_cosine[p.article_id] = max(article_cosine.get(p.article_id, 0.0), cosine.get(p.pk, floor))
        article_keyword[p.article_id] = max(article_keyword.get(p.article_id, 0.0), keyword_share.get(p.pk, 0.0))
        # The article's best passage that says something (the title passage finds an article but says nothing).
        shown = best_chunk.get(p.article_id)
        if shown is None or (shown.text == shown.title and p.text != p.title):
            best_chunk[p.article_id] = p
    score = {a: article_cosine[a] + KEYWORD_WEIGHT * article_keyword[a] for a in article_cosine}
    hits: list[SearchHit] = []
    for article_id in sorted(score, key=lambda a: score[a], reverse=True)[:k]:
        chunk = best_chunk[article_id]
        passage = chunk if chunk.text != chunk.title else _body_passage(chunk)
        hits.append(
            SearchHit(
                article_id=article_id,
                chunk_id=passage.pk,
                title=chunk.title,
                url=chunk.url,
                text=passage.text,
                score=round(score[article_id], 6),
                similarity=round(article_cosine[article_id], 4),
            )
        )
    timings["fuse"] = (time.perf_counter() - mark) * 1000
    timings["total"] = (time.perf_counter() - started) * 1000
    confidence = max((h.similarity for h in hits[:3]), default=0.0)
    return SearchResult(query=query, hits=hits, confidence=round(confidence, 4), timings_ms=timings)
