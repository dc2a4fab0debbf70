"""The trained models' text features and linear layer at serving time, without scikit-learn.

Training fits scikit-learn's vectorizers and logistic regressions (agents.intents,
agents.sentiment_linear); what a web process needs of them to score a message is small: the
n-gram analyzers, a vocabulary or a hash, IDF weights and one matrix product. scikit-learn with
the parts of SciPy it imports is ~73 MB in every process that imports it (bench/README.md, issue
14), more than any model it serves, so the serving side is written here to give the same numbers:
``tests/agents/test_text_features.py`` holds each piece equal to scikit-learn's (1.9.1, the pinned
version) on the shared sets' texts. Hashing is MurmurHash3 (x86, 32-bit, seed 0) from ``mmh3``,
the function scikit-learn's HashingVectorizer calls."""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import mmh3
import numpy as np
from scipy.sparse import csr_matrix

WORD_PATTERN = r"(?u)\b\w\w+\b"  # scikit-learn's default token_pattern
_WHITE_SPACES = re.compile(r"\s\s+")


@dataclass
class NgramAnalyzer:
    """A text's n-grams as scikit-learn's ``build_analyzer()`` makes them for ``analyzer`` "word",
    "char" or "char_wb" (no stop words, no accent stripping, ``input="content"``). A
    ``preprocessor`` replaces the lower-casing, as in scikit-learn."""

    kind: str = "word"
    ngram_range: tuple[int, int] = (1, 1)
    lowercase: bool = True
    preprocessor: Callable[[str], str] | None = None
    token_pattern: str = WORD_PATTERN

    def __post_init__(self) -> None:
        if self.kind not in ("word", "char", "char_wb"):
            raise ValueError(f"Unknown analyzer {self.kind!r}.")
        self._tokens = re.compile(self.token_pattern).findall

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_tokens", None)  # a compiled pattern's bound method, made again on loading
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._tokens = re.compile(self.token_pattern).findall

    @classmethod
    def of(cls, vectorizer: Any) -> "NgramAnalyzer":
        """The analyzer a fitted (or unfitted) scikit-learn text vectorizer would build."""
        if vectorizer.stop_words is not None or vectorizer.strip_accents or vectorizer.tokenizer is not None:
            raise ValueError("Stop words, accent stripping and custom tokenizers are not supported.")
        return cls(
            kind=vectorizer.analyzer,
            ngram_range=tuple(vectorizer.ngram_range),
            lowercase=vectorizer.lowercase,
            preprocessor=vectorizer.preprocessor,
            token_pattern=vectorizer.token_pattern,
        )

    def __call__(self, text: str) -> list[str]:
        if self.preprocessor is not None:
            text = self.preprocessor(text)
        elif self.lowercase:
            text = text.lower()
        if self.kind == "word":
            return self._word_ngrams(self._tokens(text))
        text = _WHITE_SPACES.sub(" ", text)
        return self._char_ngrams(text) if self.kind == "char" else self._char_wb_ngrams(text)

    def _word_ngrams(self, tokens: list[str]) -> list[str]:
        low, high = self.ngram_range
        if high == 1:
            return tokens
        grams = list(tokens) if low == 1 else []
        for n in range(max(low, 2), min(high + 1, len(tokens) + 1)):
            grams.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
        return grams

    def _char_ngrams(self, text: str) -> list[str]:
        low, high = self.ngram_range
        grams = list(text) if low == 1 else []
        for n in range(max(low, 2), min(high + 1, len(text) + 1)):
            grams.extend(text[i : i + n] for i in range(len(text) - n + 1))
        return grams

    def _char_wb_ngrams(self, text: str) -> list[str]:
        low, high = self.ngram_range
        grams: list[str] = []
        for word in text.split():
            padded = f" {word} "
            for n in range(low, high + 1):
                # every n-gram of the padded word; a word shorter than n counts once, whole
                grams.extend(padded[i : i + n] for i in range(max(1, len(padded) - n + 1)))
                if len(padded) <= n:
                    break
        return grams


def _counted(
    texts: Sequence[str],
    analyzer: NgramAnalyzer,
    column: Callable[[str], int | None],
    width: int,
    binary: bool = False,
) -> csr_matrix:
    """How often each text's n-grams fall in each column (``column`` of an n-gram; None: not
    counted), one row a text, columns in order within a row; ``binary``: 1 for any number."""
    indptr = np.zeros(len(texts) + 1, dtype=np.int64)
    indices: list[int] = []
    data: list[float] = []
    for n, text in enumerate(texts):
        row = _row_counted(text, analyzer, column, binary)
        columns = sorted(row)
        indices += columns
        data += [row[at] for at in columns]
        indptr[n + 1] = len(indices)
    return csr_matrix(
        (np.array(data, dtype=np.float64), np.array(indices, dtype=np.int32), indptr), shape=(len(texts), width)
    )


def _row_counted(
    text: str, analyzer: NgramAnalyzer, column: Callable[[str], int | None], binary: bool
) -> dict[int, float]:
    """One text's counts by column (see _counted), in the order the n-grams first occur."""
    row: dict[int, float] = {}
    for gram in analyzer(text):
        at = column(gram)
        if at is not None:
            row[at] = 1.0 if binary else row.get(at, 0.0) + 1.0
    return row


def hashed_counts(texts: Sequence[str], analyzer: NgramAnalyzer, buckets: int) -> csr_matrix:
    """How often each n-gram's bucket occurs in each text: scikit-learn's HashingVectorizer with
    ``alternate_sign=False, norm=None`` (bucket = |MurmurHash3 of the UTF-8 n-gram| mod buckets).
    The n-grams are hashed as bytes: ``mmh3.hash`` of a str holding a lone surrogate (what an
    escaped emoji half such as "\\ud83d" in a message decodes to) crashes the process, where
    scikit-learn raised UnicodeEncodeError; encoded with "surrogatepass" it gets a bucket like
    any other n-gram, and every other n-gram the bytes it always had."""
    return _counted(texts, analyzer, lambda gram: bucket_of(gram, buckets), buckets)


def bucket_of(gram: str, buckets: int) -> int:
    """The hash bucket of one n-gram (see hashed_counts)."""
    return abs(mmh3.hash(gram.encode("utf-8", "surrogatepass"))) % buckets


@dataclass
class TfidfFeatures:
    """A fitted TfidfVectorizer's ``transform``: counts over its vocabulary, then (sublinear) tf
    times idf, each row scaled to unit length (``norm="l2"``) or not (``norm=None``)."""

    analyzer: NgramAnalyzer
    vocabulary: dict[str, int]
    idf: np.ndarray
    sublinear_tf: bool
    norm: str | None
    binary: bool = False

    @classmethod
    def of(cls, vectorizer: Any) -> "TfidfFeatures":
        if vectorizer.norm not in ("l2", None) or not vectorizer.use_idf:
            raise ValueError("Only l2 or no norm, with idf weights, is supported.")
        return cls(
            analyzer=NgramAnalyzer.of(vectorizer),
            vocabulary=dict(vectorizer.vocabulary_),
            idf=np.asarray(vectorizer.idf_, dtype=np.float64),
            sublinear_tf=vectorizer.sublinear_tf,
            norm=vectorizer.norm,
            binary=vectorizer.binary,
        )

    def transform(self, texts: Sequence[str]) -> csr_matrix:
        matrix = _counted(texts, self.analyzer, self.vocabulary.get, len(self.idf), self.binary)
        if self.sublinear_tf:
            np.log(matrix.data, matrix.data)
            matrix.data += 1.0
        matrix.data *= self.idf[matrix.indices]
        if self.norm == "l2":
            lengths = np.diff(matrix.indptr)
            rows_of = np.repeat(np.arange(matrix.shape[0]), lengths)
            norms = np.sqrt(np.bincount(rows_of, weights=matrix.data**2, minlength=matrix.shape[0]))
            norms[norms == 0.0] = 1.0  # an empty row stays empty
            matrix.data /= np.repeat(norms, lengths)
        return matrix

    def row(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """``transform([text])`` as (its columns, their weights), without a sparse matrix: for one
        message (a chat turn's), SciPy's matrix construction cost more than the arithmetic."""
        counts = _row_counted(text, self.analyzer, self.vocabulary.get, self.binary)
        columns = np.fromiter(counts, dtype=np.int64, count=len(counts))
        weights = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
        if self.sublinear_tf:
            np.log(weights, weights)
            weights += 1.0
        weights *= self.idf[columns]
        if self.norm == "l2":
            length = float(np.sqrt(np.dot(weights, weights)))
            if length:  # an empty row stays empty
                weights /= length
        return columns, weights


@dataclass
class LinearClassifier:
    """A fitted LogisticRegression's ``predict_proba``: the softmax of X·coefᵀ + intercept for
    three labels or more; for two, the logistic of the one decision (one-vs-rest), as
    scikit-learn computes them."""

    coef: np.ndarray
    intercept: np.ndarray
    classes: np.ndarray

    @classmethod
    def of(cls, model: Any) -> "LinearClassifier":
        return cls(coef=np.asarray(model.coef_), intercept=np.asarray(model.intercept_), classes=model.classes_)

    def predict_proba(self, features: Any) -> np.ndarray:
        return self._probabilities(np.asarray(features @ self.coef.T) + self.intercept)

    def predict_proba_one(
        self, columns: np.ndarray, weights: np.ndarray, dense: np.ndarray, dense_at: int
    ) -> np.ndarray:
        """``predict_proba`` of one row given as its sparse part (``columns``, ``weights``) and a
        dense part that fills the columns from ``dense_at`` on; a 1 x labels array."""
        decision = self.coef[:, columns] @ weights + self.intercept
        decision += self.coef[:, dense_at : dense_at + len(dense)] @ dense
        return self._probabilities(decision[None, :])

    def _probabilities(self, decision: np.ndarray) -> np.ndarray:
        if len(self.classes) <= 2:
            with np.errstate(over="ignore"):  # exp overflows to inf for a sure negative: 0, as expit
                positive = 1.0 / (1.0 + np.exp(-decision[:, 0]))
            return np.stack([1.0 - positive, positive], axis=1)
        decision -= decision.max(axis=1, keepdims=True)
        np.exp(decision, decision)
        decision /= decision.sum(axis=1, keepdims=True)
        return decision
