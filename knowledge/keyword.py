"""The keyword leg: BM25 over the corpora of an organization.

Knowledge owns ``kb`` (knowledge-base chunks, document id = chunk id, for hybrid search). Other
apps register their own corpus with ``corpus_register`` (tickets registers ``desk``: ticket
subjects and message texts, for staff search), so this module never reads their models.

With ELASTICSEARCH_URL set, the Elasticsearch backend (knowledge.elastic) keeps an index per
organization and corpus, written as rows change. Otherwise the built-in backend holds a bm25s
index in memory, rebuilt from the database whenever a cheap fingerprint of the rows changes.
"""

import functools
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from django.conf import settings
from django.db.models import Count, Max

from config import changes
from config.clients import process_client


def _import_bm25s() -> Any:
    """bm25s imports jax wherever jax is installed, and runs a jax operation as it loads: 1.8 s
    and ~200 MB more in every process that searches. jax is a development dependency here (it
    tunes the shipped sentiment model's layers, agents.sentiment_tuning), so bm25s loads with jax
    hidden and ranks with numpy, as it does in production, where jax is not installed."""
    hide = "jax" not in sys.modules
    if hide:
        sys.modules["jax"] = None  # type: ignore[assignment]  # `import jax` raises ImportError
    try:
        import bm25s
    finally:
        if hide:
            del sys.modules["jax"]
    return bm25s


bm25s = _import_bm25s()

KB = "kb"

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


_HAN = re.compile(r"[\u3400-\u9fff]")
_LATIN = re.compile(r"[a-z]", re.IGNORECASE)
# Chinese function words that say nothing about the topic.
_ZH_STOPWORDS = frozenset(
    [
        "的",
        "了",
        "吗",
        "呢",
        "吧",
        "啊",
        "我",
        "你",
        "您",
        "他",
        "她",
        "我们",
        "你们",
        "是",
        "在",
        "有",
        "和",
        "与",
        "就",
        "都",
        "也",
        "还",
        "要",
        "能",
        "可以",
        "怎么",
        "怎样",
        "什么",
        "哪",
        "哪里",
        "多少",
        "为什么",
        "请问",
        "请",
        "一下",
        "一个",
        "这个",
        "那个",
    ]
)


def mostly_chinese(text: str) -> bool:
    """Chinese text, even with some Latin words in it (brand names, order numbers)."""
    han = len(_HAN.findall(text))
    return han > 0 and han * 3 >= len(_LATIN.findall(text))


@functools.cache
def _jieba() -> Any:
    """jieba's segmenter as rjieba (jieba-rs, the Rust port: the same dictionary and algorithm,
    its dictionary in Rust memory). Against jieba 0.42.1 on the 40,663 runs of Chinese characters
    in the shared waimai set and our Chinese retrieval sets, its accurate-mode cuts were the same
    but for one run ("赞赞赞赞赞": the same words in another order) and its search-mode words the
    same for all. It takes 33 MB in the process that loads it (the gunicorn master, shared by every
    worker) where jieba took 80, and cuts 13 times as fast."""
    import rjieba

    rjieba.cut("预热")  # its dictionary loads on the first cut
    return rjieba


def chinese_words(run: str) -> list[str]:
    """A run of Chinese characters cut into words (jieba's accurate mode)."""
    return [word for word in _jieba().cut(run) if word.strip()]


def tokenize(text: str) -> list[str]:
    """Words for BM25: Latin words and numbers split on non-word characters; runs of Chinese
    characters cut into words by jieba (search mode, which also yields the shorter words inside
    long ones)."""
    tokens: list[str] = []
    for token in _TOKEN.findall(text.lower()):
        if not _HAN.search(token):
            if token not in _STOPWORDS:
                tokens.append(token)
            continue
        for word in _jieba().cut_for_search(token):
            word = word.strip()
            if word and word not in _ZH_STOPWORDS and word not in _STOPWORDS:
                tokens.append(word)
    return tokens


def warm() -> None:
    """The backend made, and jieba's dictionary loaded before a Chinese question."""
    get_backend()
    _jieba()


# --- what each corpus holds, read from the database ---------------------------------------


def _kb_rows(organization_id: int) -> list[tuple[str, str]]:
    from knowledge.models import Chunk

    rows = Chunk.objects.filter(organization_id=organization_id).values_list("id", "text")
    return [(str(cid), text) for cid, text in rows]


def _kb_stamp(organization_id: int) -> tuple[Any, ...]:
    from knowledge.models import Chunk

    row = Chunk.objects.filter(organization_id=organization_id).aggregate(n=Count("id"), top=Max("id"))
    return (row["n"], row["top"])


@dataclass(frozen=True)
class Corpus:
    name: str
    rows: Callable[[int], list[tuple[str, str]]]
    stamp: Callable[[int], tuple[Any, ...]]
    # How long a process trusts the fingerprint it read (0: read it on every search). The
    # knowledge base is searched on every chat turn; its writes in this process reset it at once,
    # another process's writes show within this time.
    stamp_seconds: float = 0.0


KB_STAMP_SECONDS = 1.0
CORPORA: dict[str, Corpus] = {KB: Corpus(KB, _kb_rows, _kb_stamp, KB_STAMP_SECONDS)}


def corpus_register(
    name: str, rows: Callable[[int], list[tuple[str, str]]], stamp: Callable[[int], tuple[Any, ...]]
) -> None:
    """Add an app's corpus: ``rows(organization_id)`` gives every (document id, text) to index,
    ``stamp(organization_id)`` a cheap fingerprint that changes whenever those rows do. Called
    from the owning app's ``AppConfig.ready``."""
    CORPORA[name] = Corpus(name, rows, stamp)


# --- backends ----------------------------------------------------------------------------


class KeywordBackend(Protocol):
    name: str

    def search(self, organization_id: int, corpus: str, query: str, k: int) -> list[tuple[str, float]]: ...

    def upsert(self, organization_id: int, corpus: str, documents: list[tuple[str, str, dict[str, Any]]]) -> None: ...

    def delete(self, organization_id: int, corpus: str, ids: list[str]) -> None: ...

    def rebuild(self, organization_id: int, corpus: str, rows: list[tuple[str, str]]) -> int:
        """Replace the corpus's index with these (document id, text) rows; returns how many."""
        ...

    def size(self, organization_id: int, corpus: str) -> int: ...


@dataclass
class _Index:
    stamp: tuple[Any, ...]
    ids: list[str]
    retriever: Any


# (organization id, corpus) -> (read at, fingerprint, config.changes token), for corpora with
# stamp_seconds.
_stamps: dict[tuple[int, str], tuple[float, tuple[Any, ...], tuple[int, int]]] = {}


def stamps_forget(organization_id: int | None = None, corpus: str | None = None) -> None:
    """Read the fingerprints again on the next search: one corpus of one organization, or all."""
    if organization_id is None or corpus is None:
        _stamps.clear()
    else:
        _stamps.pop((organization_id, corpus), None)


def _stamp(organization_id: int, corpus: Corpus) -> tuple[Any, ...]:
    """The corpus's fingerprint, read again after ``stamp_seconds``, or, where PostgreSQL
    announces changes (config.changes), once a change of the organization was announced."""
    key = (organization_id, corpus.name)
    now = time.monotonic()
    if corpus.stamp_seconds:
        read = _stamps.get(key)
        if read is not None and changes.still_good(read[0], corpus.stamp_seconds, organization_id, read[2]):
            return read[1]
    since = changes.token(organization_id)
    stamp = corpus.stamp(organization_id)
    if corpus.stamp_seconds:
        _stamps[key] = (now, stamp, since)
    return stamp


class Bm25Backend:
    """In-process BM25. Writes only reset the fingerprint: the index follows the database."""

    name = "bm25"

    def __init__(self) -> None:
        self._indexes: dict[tuple[int, str], _Index] = {}
        self._lock = threading.Lock()

    def _build(self, organization_id: int, corpus: Corpus, stamp: tuple[Any, ...]) -> _Index:
        rows = corpus.rows(organization_id)
        retriever = None
        if rows:
            retriever = bm25s.BM25()
            retriever.index([tokenize(text) or ["_"] for _, text in rows], show_progress=False)
        return _Index(stamp=stamp, ids=[doc_id for doc_id, _ in rows], retriever=retriever)

    def _index(self, organization_id: int, corpus_name: str) -> _Index:
        corpus = CORPORA[corpus_name]
        key = (organization_id, corpus_name)
        stamp = _stamp(organization_id, corpus)
        current = self._indexes.get(key)
        if current is None or current.stamp != stamp:
            with self._lock:
                current = self._indexes.get(key)
                if current is None or current.stamp != stamp:
                    current = self._indexes[key] = self._build(organization_id, corpus, stamp)
        return current

    def search(self, organization_id: int, corpus: str, query: str, k: int) -> list[tuple[str, float]]:
        index = self._index(organization_id, corpus)
        tokens = tokenize(query)
        if index.retriever is None or not tokens:
            return []
        docs, scores = index.retriever.retrieve([tokens], k=min(k, len(index.ids)), show_progress=False)
        pairs = zip(np.asarray(docs)[0], np.asarray(scores)[0], strict=True)
        return [(index.ids[int(d)], float(s)) for d, s in pairs if s > 0]

    def upsert(self, organization_id: int, corpus: str, documents: list[tuple[str, str, dict[str, Any]]]) -> None:
        """The next search in this process sees the new rows."""
        stamps_forget(organization_id, corpus)

    def delete(self, organization_id: int, corpus: str, ids: list[str]) -> None:
        """The next search in this process no longer sees the deleted rows."""
        stamps_forget(organization_id, corpus)

    def rebuild(self, organization_id: int, corpus: str, rows: list[tuple[str, str]]) -> int:
        """The index follows the database by itself: forget it, and the next search reads the rows."""
        stamps_forget(organization_id, corpus)
        self._indexes.pop((organization_id, corpus), None)
        return len(rows)

    def size(self, organization_id: int, corpus: str) -> int:
        return len(self._index(organization_id, corpus).ids)


@process_client
def _backend_for(url: str) -> KeywordBackend:
    if url:
        from knowledge.elastic import ElasticsearchBackend

        return ElasticsearchBackend(url)
    return Bm25Backend()


def get_backend() -> KeywordBackend:
    """Elasticsearch when ELASTICSEARCH_URL is set, else the built-in BM25 index."""
    return _backend_for(settings.ELASTICSEARCH_URL)


def search(organization_id: int, query: str, k: int, corpus: str = KB) -> list[tuple[str, float]]:
    return get_backend().search(organization_id, corpus, query, k)


def rebuild(organization_id: int, corpus: str) -> int:
    """Rebuild one corpus of an organization from the database, in whichever backend is in use."""
    return get_backend().rebuild(organization_id, corpus, CORPORA[corpus].rows(organization_id))
