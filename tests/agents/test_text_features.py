"""Serving without scikit-learn (agents.text_features): every piece gives scikit-learn's numbers
on the shared sets' texts (English requests, tweets, Chinese reviews), and a web process that
loads and scores the models never imports it."""

import csv
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import mmh3
import numpy as np
import pytest
from scipy.sparse import hstack
from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from agents.intents import IntentClassifier, words_segmented
from agents.sentiment_linear import LinearSentiment, Spec, normalise
from agents.text_features import LinearClassifier, NgramAnalyzer, TfidfFeatures, hashed_counts

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"


def _texts(path: Path, count: int) -> list[str]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [row["text"] for _, row in zip(range(count), csv.DictReader(handle), strict=False)]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    rows = _texts(SHARED / "intents" / "clinc150_val.csv", 800)
    rows += _texts(SHARED / "sentiment" / "tweeteval_val.csv", 800)
    rows += _texts(SHARED / "sentiment" / "waimai_10k_zh.csv", 800)
    # edge cases: empty, blank, shorter than the n-grams, runs of white space, mixed scripts
    return [*rows, "", "   ", "a", "ab", "I  am\t\n fine", "可以用 Apple Pay 付款吗？", "don't!!"]


@pytest.mark.parametrize(
    "options",
    [
        {"analyzer": "char_wb", "ngram_range": (2, 5)},
        {"analyzer": "char_wb", "ngram_range": (1, 3)},
        {"analyzer": "char", "ngram_range": (1, 3)},
        {"analyzer": "char", "ngram_range": (2, 5)},
        {"ngram_range": (1, 2)},
        {"ngram_range": (2, 3)},
        {"ngram_range": (1, 2), "preprocessor": words_segmented},
        {"ngram_range": (1, 1), "lowercase": False},
    ],
)
def test_ngrams_and_hashed_counts_equal_scikit_learns(texts, options):
    reference = HashingVectorizer(n_features=2**18, alternate_sign=False, norm=None, **options)
    ours = NgramAnalyzer.of(reference)
    analyze = reference.build_analyzer()
    assert [ours(text) for text in texts] == [analyze(text) for text in texts]
    assert (hashed_counts(texts, ours, 2**18) != reference.transform(texts)).nnz == 0


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # a few iterations are enough here
def test_tfidf_features_and_probabilities_equal_scikit_learns(texts):
    labels = [str(n % 7) for n in range(len(texts))]
    for vectorizer in (
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=50_000, preprocessor=words_segmented),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2, max_features=100_000),
        TfidfVectorizer(ngram_range=(1, 1), binary=True, norm=None),
    ):
        matrix = vectorizer.fit(texts[::2]).transform(texts)  # half the texts unseen: words out of vocabulary
        ours = TfidfFeatures.of(vectorizer).transform(texts)
        assert ours.shape == matrix.shape and abs(ours - matrix).max() < 1e-12
        assert (ours != 0).nnz == (matrix != 0).nnz
        # one text at a time (a chat turn's): the same columns and weights, without a sparse matrix
        features = TfidfFeatures.of(vectorizer)
        for n in range(0, len(texts), 3):
            columns, weights = features.row(texts[n])
            row = np.zeros(matrix.shape[1])
            row[columns] = weights
            assert len(set(columns.tolist())) == len(columns) == matrix[n].nnz
            assert np.abs(row - matrix[n].toarray()[0]).max() < 1e-12
    for classes in (labels, [str(n % 2) for n in range(len(texts))]):  # two classes: one-vs-rest's logistic
        model = LogisticRegression(C=20, max_iter=50).fit(matrix, classes)
        assert np.abs(LinearClassifier.of(model).predict_proba(matrix) - model.predict_proba(matrix)).max() < 1e-12
    with pytest.raises(ValueError, match="Stop words"):
        NgramAnalyzer.of(TfidfVectorizer(stop_words="english"))


def test_the_sentiment_models_counts_are_scikit_learns(texts):
    spec = Spec()  # the shipped models' n-grams: characters in words 2-5, words 1-2, 2**18 buckets each
    reference = [
        HashingVectorizer(n_features=spec.buckets, alternate_sign=False, norm=None, analyzer="char_wb",
                          ngram_range=spec.char_ngrams),
        HashingVectorizer(n_features=spec.buckets, alternate_sign=False, norm=None, ngram_range=spec.word_ngrams),
    ]  # fmt: skip
    ours = LinearSentiment._counts(spec, texts)
    expected = hstack([v.transform([normalise(t) for t in texts]) for v in reference]).tocsr()
    assert ours.shape == expected.shape and (ours != expected).nnz == 0


def test_one_message_scores_as_in_a_batch(texts):
    """A chat turn scores one message without sparse matrices: the shipped models (English with
    its tuned layers on the encoder's token states, Chinese on n-grams alone) give it the
    probabilities the batch path gives it, edge cases included."""
    from agents.sentiment import sentiment_engine

    sample = [t for t in texts[::8] if "\\u" not in t] + texts[-7:]
    for language in ("en", "zh"):
        model, engine = sentiment_engine(language)
        assert engine.startswith("shipped") and (model.layers is not None) == (language == "en")
        batch = model.probabilities(sample)
        one_by_one = np.vstack([model.probabilities([text]) for text in sample])
        assert batch.shape == one_by_one.shape == (len(sample), len(model.labels))
        assert np.abs(batch - one_by_one).max() < 1e-5
        assert (batch.argmax(axis=1) == one_by_one.argmax(axis=1)).all()


def test_a_message_with_half_an_escaped_emoji_is_scored():
    """The public sets and some clients write emoji as escaped UTF-16 halves ("\\ud83d"), which
    normalise() decodes to lone surrogates; mmh3 crashed the process on such a str (a customer
    could have taken a web worker down with one message). It is hashed as bytes now."""
    text = normalise("great \\ud83d\\ude00 thanks") + " and " + chr(0xDE00)
    counts = LinearSentiment._counts(Spec(), [text, "great thanks"])
    assert counts.shape[0] == 2 and counts[0].nnz > counts[1].nnz > 0
    assert abs(mmh3.hash(b"great")) % 2**18 in set(hashed_counts(["great"], NgramAnalyzer(), 2**18).indices)


SCORER = """
import json, pickle, sys
import django
django.setup()
from agents.intents import IntentClassifier
classifier = IntentClassifier.loads(open(sys.argv[1], "rb").read())
texts, vectors = pickle.load(open(sys.argv[2], "rb"))
probabilities = classifier.probabilities(texts, vectors)
print(json.dumps({"sklearn": sorted(m for m in sys.modules if m.split(".")[0] == "sklearn")[:3],
                  "probabilities": probabilities.tolist()}))
"""


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_saved_intent_model_scores_in_a_process_without_scikit_learn(tmp_path):
    rows = _texts(SHARED / "intents" / "clinc150_val.csv", 600)
    with (SHARED / "intents" / "clinc150_val.csv").open(encoding="utf-8", newline="") as handle:
        labels = [row["label"] for _, row in zip(range(600), csv.DictReader(handle), strict=False)]
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(len(rows), 384)).astype(np.float32)  # stand-ins for the embeddings
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    classifier = IntentClassifier()
    classifier._vectors = lambda texts, vectors=None, progress=None, bulk=False: vectors_of(texts)  # type: ignore[method-assign]
    index = {text: n for n, text in enumerate(rows)}

    def vectors_of(texts: list[str]) -> np.ndarray:
        return vectors[[index[t] for t in texts]]

    classifier.fit(rows[:500], labels[:500])
    del classifier._vectors
    (tmp_path / "model").write_bytes(classifier.dumps())
    (tmp_path / "texts").write_bytes(pickle.dumps((rows[500:], vectors[500:])))
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "ORT_DISABLE_TELEMETRY": "1"}
    result = subprocess.run([sys.executable, "-c", SCORER, str(tmp_path / "model"), str(tmp_path / "texts")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    scored = json.loads(result.stdout.strip().splitlines()[-1])
    assert scored["sklearn"] == []
    batch = classifier.probabilities(rows[500:], vectors[500:])
    assert np.abs(np.array(scored["probabilities"]) - batch).max() < 1e-12
    # One message (a chat turn's) is scored without sparse matrices: the same probabilities and intents.
    # (The regression's to 1e-12; the blend with the neighbours' float32 similarities to 1e-6.)
    singles = [classifier._scored([text], vectors[500 + n][None, :]) for n, text in enumerate(rows[500:])]
    regression = classifier._scored(rows[500:], vectors[500:])[0]
    assert np.abs(np.vstack([one[0] for one in singles]) - regression).max() < 1e-12
    assert np.abs(np.vstack([one[1] for one in singles]) - batch).max() < 1e-6
    assert [classifier.predict(text, vectors[500 + n]).intent for n, text in enumerate(rows[500:])] == [
        p.intent for p in classifier.predict_many(rows[500:], vectors[500:])
    ]

    # A model saved before (scikit-learn's own fitted objects in the pickle) loads and scores the same.
    old = IntentClassifier()
    old.__dict__.update(classifier.__dict__)
    words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, preprocessor=words_segmented).fit(rows[:500])
    old.words, old.chars = words, TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5)).fit(rows[:500])
    features = np.hstack([words.transform(rows).toarray(), old.chars.transform(rows).toarray(), vectors * 2.0])
    old.model = LogisticRegression(C=20, max_iter=50).fit(features[:500], labels[:500])
    expected = old.model.predict_proba(features[500:])
    loaded = IntentClassifier.loads(pickle.dumps(old))
    assert isinstance(loaded.words, TfidfFeatures) and isinstance(loaded.model, LinearClassifier)
    assert np.abs(loaded._scored(rows[500:], vectors[500:])[0] - expected).max() < 1e-12
    assert np.abs(loaded._scored(rows[550:551], vectors[550:551])[0] - expected[50:51]).max() < 1e-12
