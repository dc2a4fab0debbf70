"""The sentiment models that ship with Concierge: hashed word and character n-grams (TF-IDF
weighted) beside the message's MiniLM sentence embedding, one multinomial logistic regression.

Hashing keeps the files free of text: a shipped model holds numbers only (the n-grams' IDF
weights by hash bucket, the regression's coefficients), no vocabulary, no training sentence.
The embedding is the vector the assistant already computed for intent and retrieval, so the
model adds a hashing pass and a dot product to a chat turn (well under a millisecond).

The shipped English model also carries its own copies of the encoder's last two layers, tuned
for sentiment (``layers``, an ONNX graph made by knowledge.model_prep.layers_model): it reads
their pooled output instead of the sentence vector, run on the token states the assistant's one
encoder pass left (knowledge.embeddings.Encoding), about two milliseconds more a turn. Tuning
them moved SST-2 dev from 0.835 to 0.862 (bench/README.md, issue 15).

``manage.py train_default_sentiment`` makes the files under agents/shipped/ from the public
sets in ../shared/data; agents/shipped/README.md says what each was trained on."""

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix, hstack

from agents.text_features import NgramAnalyzer, bucket_of, hashed_counts

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
FORMAT = 1

_ESCAPED = re.compile(r"\\u([0-9a-fA-F]{4})")
_MENTION = re.compile(r"@\w+")
_URL = re.compile(r"https?://\S+")


def normalise(text: str) -> str:
    """What both training and scoring see: escaped characters decoded (some public sets store
    commas as ``\\u002c``), handles and links reduced to one token each."""
    text = _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text)
    return _URL.sub("http", _MENTION.sub("@user", text))


@dataclass
class Spec:
    """How a model turns text into features."""

    word_ngrams: tuple[int, int] | None = (1, 2)
    char_analyzer: str = "char_wb"
    char_ngrams: tuple[int, int] = (2, 5)
    buckets: int = 2**18  # per kind of n-gram
    embedding_weight: float = 0.0  # 0: no sentence embedding
    c: float = 1.0
    balanced: bool = False  # weigh the labels equally (macro recall), not by how common they are

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class LinearSentiment:
    language: str
    spec: Spec
    labels: list[str]
    idf: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    notes: dict[str, Any] = field(default_factory=dict)
    layers: bytes | None = None  # tuned last encoder layers (ONNX), read instead of the sentence vector
    _runner: Any = field(default=None, repr=False, compare=False)

    @property
    def reads_states(self) -> bool:
        """Whether the model reads token states (``probabilities(states=...)``), not vectors."""
        return self.layers is not None

    def sentence_vectors(self, texts: list[str], vectors: Any = None, states: Any = None) -> Any:
        """What the model reads beside the n-grams: the encoder's sentence vectors (``vectors``,
        computed here when not given) or, with tuned layers, their output on the texts' token
        states (``states``, one array per text, computed here when not given)."""
        from knowledge import embeddings

        if self.layers is None:
            return embeddings.embed([normalise(t) for t in texts]) if vectors is None else vectors
        if states is None:
            states = [encoding.states for encoding in embeddings.encode([normalise(t) for t in texts])]
        if self._runner is None:
            self._runner = embeddings.TunedLayers(self.layers)
        return self._runner.vectors(states)

    # --- features -----------------------------------------------------------------------

    @staticmethod
    def _analyzers(spec: Spec) -> list[NgramAnalyzer]:
        """Character n-grams, then word n-grams, as scikit-learn's HashingVectorizer cut them
        when the shipped models were trained (agents.text_features: the same buckets)."""
        made = [NgramAnalyzer(kind=spec.char_analyzer, ngram_range=spec.char_ngrams)]
        if spec.word_ngrams:
            made.append(NgramAnalyzer(kind="word", ngram_range=spec.word_ngrams))
        return made

    @classmethod
    def _counts(cls, spec: Spec, texts: list[str]) -> csr_matrix:
        cleaned = [normalise(t) for t in texts]
        return hstack([hashed_counts(cleaned, analyzer, spec.buckets) for analyzer in cls._analyzers(spec)]).tocsr()

    @staticmethod
    def _tfidf(counts: csr_matrix, idf: np.ndarray) -> csr_matrix:
        weighted = counts.astype(np.float32)
        weighted.data = (1.0 + np.log(weighted.data)) * idf[weighted.indices]  # sublinear tf
        norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
        scale = 1.0 / np.clip(norms, 1e-12, None)
        return csr_matrix(weighted.multiply(scale[:, None]))

    def _features(self, texts: list[str], vectors: Any, states: Any = None) -> csr_matrix:
        sparse = self._tfidf(self._counts(self.spec, texts), self.idf)
        if not self.spec.embedding_weight:
            return sparse
        vectors = self.sentence_vectors(texts, vectors, states)
        return hstack([sparse, csr_matrix(np.asarray(vectors, dtype=np.float32) * self.spec.embedding_weight)]).tocsr()

    def _logits_of_one(self, text: str, vectors: Any, states: Any) -> np.ndarray:
        """``_features([text]) @ coef.T + intercept`` without building sparse matrices: for one
        message (a chat turn's), SciPy's matrix construction cost more than the arithmetic (the
        shipped English model: 1.46 -> 0.93 ms a message, its tuned layers included). The same
        n-gram counts, TF-IDF weights and length."""
        counts: dict[int, int] = {}
        cleaned, offset = normalise(text), 0
        for analyzer in self._analyzers(self.spec):
            for gram in analyzer(cleaned):
                column = offset + bucket_of(gram, self.spec.buckets)
                counts[column] = counts.get(column, 0) + 1
            offset += self.spec.buckets
        columns = np.fromiter(counts, dtype=np.int64, count=len(counts))
        tf = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
        weights = (1.0 + np.log(tf)) * self.idf[columns]  # sublinear tf, as _tfidf
        weights *= 1.0 / max(float(np.sqrt(np.dot(weights, weights))), 1e-12)
        logits = self.coef[:, columns] @ weights + self.intercept
        if self.spec.embedding_weight:
            dense = np.asarray(self.sentence_vectors([text], vectors, states), dtype=np.float32)[0]
            logits += self.coef[:, offset:] @ (dense * self.spec.embedding_weight)
        return np.asarray(logits, dtype=np.float64)[None, :]

    def probabilities(self, texts: list[str], vectors: Any = None, states: Any = None) -> np.ndarray:
        """One row per text, one column per label (``self.labels``). ``vectors``: the texts'
        sentence vectors; ``states``: their token states, for a model with tuned layers."""
        if len(texts) == 1:
            logits = self._logits_of_one(texts[0], vectors, states)
        else:
            logits = np.asarray(self._features(texts, vectors, states) @ self.coef.T) + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    # --- training -----------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        language: str,
        texts: list[str],
        labels: list[str],
        spec: Spec,
        vectors: Any = None,
        weights: Any = None,
        layers: bytes | None = None,
        states: Any = None,
    ) -> "LinearSentiment":
        """``weights``: one per row (a set's rows can count for more than another's). With
        ``layers`` (tuned encoder layers) the model reads their output on ``states``."""
        from sklearn.linear_model import LogisticRegression

        counts = cls._counts(spec, texts)
        documents = np.bincount(counts.indices, minlength=counts.shape[1])
        idf = (np.log((1 + counts.shape[0]) / (1 + documents)) + 1.0).astype(np.float32)
        model = cls(language, spec, [], idf, np.zeros(0), np.zeros(0), layers=layers)
        features = model._features(texts, vectors, states)
        regression = LogisticRegression(C=spec.c, max_iter=300, class_weight="balanced" if spec.balanced else None)
        regression.fit(features, labels, sample_weight=weights)
        model.labels = [str(label) for label in regression.classes_]
        model.coef = regression.coef_.astype(np.float32)
        model.intercept = regression.intercept_.astype(np.float32)
        if len(model.labels) == 2:  # scikit-learn keeps one row for two classes
            model.coef = np.vstack([-model.coef, model.coef]) / 2
            model.intercept = np.array([-model.intercept[0], model.intercept[0]], dtype=np.float32) / 2
        return model

    # --- files --------------------------------------------------------------------------

    def dumps(self) -> bytes:
        buffer = io.BytesIO()
        extra: dict[str, Any] = {} if self.layers is None else {"layers": np.frombuffer(self.layers, dtype=np.uint8)}
        np.savez_compressed(
            buffer,
            **extra,
            format=np.array(FORMAT),
            language=np.array(self.language),
            labels=np.array(self.labels),
            spec=np.array(repr(self.spec.as_dict())),
            idf=self.idf.astype(np.float16),
            coef=self.coef.astype(np.float16),
            intercept=self.intercept.astype(np.float32),
            notes=np.array(repr(self.notes)),
        )
        return buffer.getvalue()

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.dumps())

    @classmethod
    def loads(cls, blob: bytes) -> "LinearSentiment":
        import ast

        with np.load(io.BytesIO(blob), allow_pickle=False) as data:
            if int(data["format"]) != FORMAT:
                raise ValueError(f"Unknown sentiment model format {int(data['format'])}.")
            spec = ast.literal_eval(str(data["spec"]))
            for key in ("word_ngrams", "char_ngrams"):
                spec[key] = tuple(spec[key]) if spec[key] else None
            return cls(
                language=str(data["language"]),
                spec=Spec(**spec),
                labels=[str(label) for label in data["labels"]],
                idf=data["idf"].astype(np.float32),
                coef=data["coef"].astype(np.float32),
                intercept=data["intercept"].astype(np.float32),
                notes=ast.literal_eval(str(data["notes"])),
                layers=data["layers"].tobytes() if "layers" in data.files else None,
            )

    @classmethod
    def load(cls, path: Path) -> "LinearSentiment":
        return cls.loads(path.read_bytes())


def shipped_path(language: str) -> Path:
    return SHIPPED_DIR / f"sentiment-{language}.npz"


_shipped: dict[str, LinearSentiment | None] = {}


def shipped_sentiment(language: str) -> LinearSentiment | None:
    """The model shipped for a language, loaded once per process; None where none ships."""
    if language not in _shipped:
        path = shipped_path(language)
        _shipped[language] = LinearSentiment.load(path) if path.is_file() else None
    return _shipped[language]
