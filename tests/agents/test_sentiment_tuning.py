"""The encoder's last layers tuned for sentiment: trained in jax (agents.sentiment_tuning),
served as an ONNX graph (knowledge.model_prep.layers_model) on the token states a chat turn's one
encoder pass leaves (knowledge.embeddings.Encoding)."""

import numpy as np
import pytest

from agents.pipeline import ConversationContext, run_pipeline
from agents.sentiment import sentiment_engine, sentiment_score
from agents.sentiment_linear import LinearSentiment, Spec
from knowledge import embeddings, model_prep

TEXTS = ["I love this jacket, it is perfect", "the worst tent I ever bought", "where is my parcel?"]


@pytest.fixture(scope="module")
def packaged_layers() -> list[dict[str, np.ndarray]]:
    return model_prep.packaged_layers(embeddings._packaged_model(), model_prep.STATES_AFTER)


def test_the_trained_function_is_the_served_one(packaged_layers):
    """Packaged weights: jax's forward (what tuning differentiates) and the ONNX graph (what
    serves; tests/knowledge/test_model_prep.py checks it against the encoder) agree."""
    jax = pytest.importorskip("jax")
    from agents.sentiment_tuning import forward

    states = [e.states for e in embeddings.encode(TEXTS)]
    hidden, mask = embeddings.padded(states, range(len(states)), multiple=16)
    trained = np.asarray(
        forward([{k: jax.numpy.asarray(v) for k, v in w.items()} for w in packaged_layers], hidden, mask)
    )
    served = embeddings.TunedLayers(model_prep.layers_model(packaged_layers))
    graph = served.session.run(None, {model_prep.STATES_OUTPUT: hidden, "attention_mask": mask})[0]
    assert np.abs((trained - graph) * mask[..., None]).max() < 1e-4


def test_tuning_moves_the_layers_toward_the_labels_and_the_model_carries_them(packaged_layers):
    pytest.importorskip("jax")
    from agents.sentiment_tuning import tune_layers

    texts = ["great stuff, love it", "so good, thank you", "terrible, I hate it", "awful, broken again"] * 4
    labels = ["positive", "positive", "negative", "negative"] * 4
    states = [e.states for e in embeddings.encode(texts)]

    def tune() -> tuple[list[dict[str, np.ndarray]], list[float]]:
        targets = [int(x == "positive") for x in labels]
        return tune_layers(packaged_layers, states, targets, [1.0] * len(texts), classes=2, epochs=3, rate=1e-4)

    tuned, losses = tune()
    assert losses[-1] < losses[0]
    # Reproducible: the same rows give the same layers, to the bit.
    again, _ = tune()
    assert all(np.array_equal(a[k], b[k]) for a, b in zip(tuned, again, strict=True) for k in a)
    assert any(np.abs(t[k] - p[k]).max() > 0 for t, p in zip(tuned, packaged_layers, strict=True) for k in ("q", "f"))
    graph = model_prep.layers_model(tuned, dtype="int8")  # as train_default_sentiment writes it
    spec = Spec(buckets=2**12, embedding_weight=4.0)
    model = LinearSentiment.train("en", texts, labels, spec, layers=graph, states=states)
    assert model.reads_states and model.layers == graph
    restored = LinearSentiment.loads(model.dumps())
    assert restored.layers == graph
    # Given the states, or encoding the texts itself: the same probabilities.
    given = restored.probabilities(texts[:4], states=states[:4])
    assert np.allclose(given, restored.probabilities(texts[:4]), atol=1e-6)
    assert given[0, 1] > 0.5 > given[2, 1]
    # A model without layers reads sentence vectors, as before.
    assert not LinearSentiment.loads(LinearSentiment.train("en", texts, labels, spec).dumps()).reads_states


@pytest.mark.django_db
def test_a_chat_turn_scores_with_the_shipped_layers_on_its_own_token_states(org, monkeypatch):
    model, engine = sentiment_engine("en")
    assert engine == "shipped en" and model.reads_states  # the shipped English model carries tuned layers
    seen = []
    embedder = embeddings.get_embedder()
    real = embedder._run  # every encoder pass, batched (a turn's embed stage) or not

    def counted(texts, *args):
        seen.append(list(texts))
        return real(texts, *args)

    monkeypatch.setattr(embedder, "_run", counted)
    text = "the tent is fantastic, thank you"
    state = run_pipeline(text, ConversationContext(org.pk))
    # One encoder pass for the turn, whose states the sentiment stage read (no second pass).
    assert seen == [[text]] and state["states"].shape[1] == model_prep.WIDTH
    assert state["sentiment"] == round(sentiment_score(text, "en", model=model, states=state["states"]), 4) > 0.3


def test_without_jax_the_english_model_is_refused_before_any_work(tmp_path, monkeypatch):
    from django.core.management import CommandError, call_command

    from agents.management.commands import train_default_sentiment as command

    monkeypatch.setattr(command, "find_spec", lambda name: None)
    with pytest.raises(CommandError, match="needs jax"):
        call_command("train_default_sentiment", "--language", "en", "--out", str(tmp_path))
    assert list(tmp_path.iterdir()) == []
