"""The built-in keyword leg: BM25 (bm25s) over an organization's chunks, held in memory and
rebuilt when the chunk table changes. The only keyword backend so far; the Elasticsearch one
(for ELASTICSEARCH_URL) is still to be written."""

import re
import threading
from dataclasses import dataclass
from typing import Any

import bm25s
import numpy as np
from django.db.models import Count, Max

from knowledge.models import Chunk

_TOKEN = re.compile(r"[\w']+", re.UNICODE)
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "so",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "do",
        "does",
        "can",
        "could",
        "would",
        "should",
        "we",
        "our",
    ]
)


def tokenize(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text.lower()) if t not in _STOPWORDS]


@dataclass
class _Index:
    stamp: tuple[int, int]
    chunk_ids: list[int]
    retriever: Any


_indexes: dict[int, _Index] = {}
_lock = threading.Lock()


def _stamp(organization_id: int) -> tuple[int, int]:
    row = Chunk.objects.filter(organization_id=organization_id).aggregate(n=Count("id"), top=Max("id"))
    return int(row["n"]), int(row["top"] or 0)


def _build(organization_id: int, stamp: tuple[int, int]) -> _Index:
    rows = list(Chunk.objects.filter(organization_id=organization_id).values_list("id", "text"))
    retriever = None
    if rows:
        retriever = bm25s.BM25()
        retriever.index([tokenize(text) or ["_"] for _, text in rows], show_progress=False)
    return _Index(stamp=stamp, chunk_ids=[cid for cid, _ in rows], retriever=retriever)


def index_for(organization_id: int) -> _Index:
    stamp = _stamp(organization_id)
    current = _indexes.get(organization_id)
    if current is None or current.stamp != stamp:
        with _lock:
            current = _indexes.get(organization_id)
            if current is None or current.stamp != stamp:
                current = _indexes[organization_id] = _build(organization_id, stamp)
    return current


def search(organization_id: int, query: str, k: int) -> list[tuple[int, float]]:
    """(chunk id, BM25 score) best first; empty when nothing matches."""
    index = index_for(organization_id)
    tokens = tokenize(query)
    if index.retriever is None or not tokens:
        return []
    k = min(k, len(index.chunk_ids))
    docs, scores = index.retriever.retrieve([tokens], k=k, show_progress=False)
    return [
        (index.chunk_ids[int(d)], float(s))
        for d, s in zip(np.asarray(docs)[0], np.asarray(scores)[0], strict=True)
        if s > 0
    ]


def size(organization_id: int) -> int:
    return len(index_for(organization_id).chunk_ids)
