import csv

import pytest

from agents.active_models import active_intent_classifier
from agents.intents import FALLBACK, IntentClassifier
from agents.language import detect_language
from agents.models import IntentModel
from agents.pipeline import ConversationContext, run_pipeline
from agents.sentiment import complaint_cues, sentiment_score, sentiment_trend
from agents.services import intent_model_activate, intent_model_train
from config.errors import DomainError


def test_language_detection():
    assert detect_language("Where is my order?") == "en"
    assert detect_language("我的订单在哪里") == "zh"
    assert detect_language("订单 order 123 还没到") == "zh"


def test_sentiment_catches_complaints_without_sentiment_words():
    assert sentiment_score("I want a refund now") < -0.2  # VADER alone calls this positive
    assert sentiment_score("my order never arrived and nobody answers") < -0.3
    assert sentiment_score("Thanks, that was really helpful!") > 0.5
    assert sentiment_score("这个外卖太难吃了") < -0.3
    assert sentiment_score("很好吃，送餐很快") > 0.3
    assert complaint_cues("Where is my parcel?") == 0
    assert sentiment_trend([0.5, 0.0, -0.5]) < 0 < sentiment_trend([-0.5, 0.0, 0.5])


def test_intent_classifier_learns_and_declines_out_of_scope():
    texts = ["where is my parcel", "track my order", "has my package shipped", "my delivery is late"] * 3
    texts += ["I want my money back", "refund please", "how do I return this", "send it back for a refund"] * 3
    labels = ["order_status"] * 12 + ["refund"] * 12
    classifier = IntentClassifier(threshold=0.6).fit(texts, labels)
    assert classifier.predict("where's my package").intent == "order_status"
    assert classifier.predict("can I get a refund").intent == "refund"
    restored = IntentClassifier.loads(classifier.dumps())
    assert restored.predict("where's my package").intent == "order_status"
    # With a high enough threshold an unrelated question is out of scope.
    assert IntentClassifier(threshold=0.99).fit(texts, labels).predict("weather in Paris").intent == FALLBACK


@pytest.mark.django_db
def test_train_versions_activate_and_roll_back(trained_org):
    first = IntentModel.objects.get(organization=trained_org)
    assert first.is_active and first.version == 1
    assert first.metrics["accuracy"] >= 0.7 and first.metrics["latency_p95_ms"] > 0
    classifier, version = active_intent_classifier(trained_org.pk)
    assert version == 1 and classifier.predict("I forgot my password").intent == "account_access"
    second = intent_model_train(organization=trained_org)
    assert second.version == 2 and active_intent_classifier(trained_org.pk)[1] == 2
    intent_model_activate(model=first)  # roll back: the next message uses v1, no restart
    assert active_intent_classifier(trained_org.pk)[1] == 1
    assert IntentModel.objects.filter(organization=trained_org, is_active=True).count() == 1


@pytest.mark.django_db
def test_training_needs_examples(org):
    with pytest.raises(DomainError, match="at least two intents"):
        intent_model_train(organization=org)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "text,intent,answered,handoff",
    [
        ("hello", "greeting", True, False),
        ("when will I get my refund?", "refund", True, False),
        ("I want to talk to a human", "human_request", True, True),
        ("what's the capital of Peru", None, False, False),
        ("This is the third time I'm writing, unacceptable!!", "complaint", None, True),
    ],
)
def test_pipeline_stages(trained_org, text, intent, answered, handoff):
    state = run_pipeline(text, ConversationContext(trained_org.pk))
    assert set(state["timings_ms"]) >= {"normalise", "language", "sentiment", "intent", "retrieve", "respond", "total"}
    if intent:
        assert state["intent"] == intent
    if answered is not None:
        assert state["answered"] is answered
    assert state["handoff"] is handoff


@pytest.mark.django_db
def test_grounded_answer_cites_its_source(trained_org):
    state = run_pipeline("when will I get my refund?", ConversationContext(trained_org.pk))
    assert state["sources"][0]["title"] == "Returns and refunds"
    assert state["sources"][0]["url"].endswith("/returns-and-refunds")
    assert "2 business days" in state["reply"]
    assert "**" not in state["reply"]


@pytest.mark.django_db
def test_repeated_fallback_and_vip_rules_escalate(trained_org):
    again = run_pipeline("what's the capital of Peru", ConversationContext(trained_org.pk, previous_fallbacks=1))
    assert again["handoff"] and "could not answer twice" in again["escalation_reasons"][0]
    vip = run_pipeline("my parcel is late again", ConversationContext(trained_org.pk, vip_tier="platinum"))
    assert vip["handoff"] and any("VIP" in r for r in vip["escalation_reasons"])


@pytest.mark.django_db
def test_answer_quotes_the_article_body_not_just_its_title(trained_org):
    state = run_pipeline("how much is membership?", ConversationContext(trained_org.pk))
    assert state["sources"][0]["title"] == "Trailhead membership and pricing"
    assert "$30" in state["reply"]


@pytest.mark.django_db
def test_admin_trains_and_rolls_back_intent_models(trained_org, supervisor):
    from django.test import Client

    client = Client()
    client.force_login(supervisor)
    example = trained_org.intent_examples.first()
    client.post("/admin/agents/intentexample/", {"action": "train_new_version", "_selected_action": [example.pk]})
    assert active_intent_classifier(trained_org.pk)[1] == 2
    first = IntentModel.objects.get(organization=trained_org, version=1)
    client.post("/admin/agents/intentmodel/", {"action": "activate", "_selected_action": [first.pk]})
    assert active_intent_classifier(trained_org.pk)[1] == 1
    assert client.get("/admin/agents/intentmodel/").status_code == 200


POSITIVE = ["I love this jacket", "great service, thank you", "the tent is fantastic", "super fast delivery"]
NEGATIVE = ["the zipper is rubbish", "awful customer service", "the tent leaks badly", "delivery was a disaster"]
NEUTRAL = ["the parcel came on tuesday", "I bought boots in may", "my order has two items", "I live in Denver"]


@pytest.mark.django_db
def test_trained_sentiment_model_takes_over_from_the_lexicon(trained_org, capsys, tmp_path):
    from django.core.management import call_command

    from agents.active_models import active_sentiment_model
    from agents.sentiment_models import sentiment_model_train

    assert active_sentiment_model("en") == (None, None)
    rows = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE] + [(t, "neutral") for t in NEUTRAL]
    model = sentiment_model_train(language="en", rows=rows * 3, source="test")
    assert model.is_active and set(model.labels) == {"negative", "neutral", "positive"}
    classifier, version = active_sentiment_model("en")
    assert version == model.version
    assert sentiment_score("the tent leaks badly", "en", model=classifier) < -0.3
    assert sentiment_score("I love this jacket", "en", model=classifier) > 0.3
    # Complaint cues still count with a trained model.
    assert sentiment_score("I want a refund now", "en", model=classifier) < -0.2
    state = run_pipeline("the tent leaks badly", ConversationContext(trained_org.pk))
    assert state["sentiment"] == round(sentiment_score("the tent leaks badly", "en", model=classifier), 4)
    csv_path = tmp_path / "s.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    call_command("evaluate_sentiment", "--csv", str(csv_path))
    assert f"engine trained-en-v{model.version} " in capsys.readouterr().out
    with pytest.raises(DomainError, match="labels"):
        sentiment_model_train(language="en", rows=[("x", "angry")] * 30)


@pytest.mark.django_db
def test_the_assistant_introduces_itself_as_each_organization(trained_org):
    greeting = run_pipeline("hello", ConversationContext(trained_org.pk, trained_org.name))["reply"]
    assert greeting.startswith(f"Hi! I'm the {trained_org.name} assistant.")
    assert "Trailhead" not in greeting and "{organization}" not in greeting
    goodbye = run_pipeline("bye, thanks", ConversationContext(trained_org.pk, trained_org.name))
    assert goodbye["intent"] == "goodbye" and "outdoors" not in goodbye["reply"]


@pytest.mark.django_db
def test_a_new_version_serves_once_activated_and_the_old_one_comes_back_on_rollback(org):
    from tests.agents.factories import IntentModelFactory

    first = IntentModelFactory(organization=org)
    classifier, version = active_intent_classifier(org.pk)
    assert version == first.version == 1
    assert classifier.predict("money back please").intent == "refund"
    second = IntentModelFactory(organization=org, activate=False)
    assert active_intent_classifier(org.pk)[1] == 1  # trained beside, not yet serving
    intent_model_activate(model=second)
    assert active_intent_classifier(org.pk)[1] == 2
    intent_model_activate(model=first)
    assert active_intent_classifier(org.pk)[1] == 1


def test_a_version_activated_by_another_process_serves_within_the_check_interval(trained_org, monkeypatch):
    from agents import active_models

    first = IntentModel.objects.get(organization=trained_org)
    second = intent_model_train(organization=trained_org)
    assert active_intent_classifier(trained_org.pk)[1] == 2
    # Another process (admin on another web worker) rolls back by writing the rows directly.
    IntentModel.objects.filter(pk=second.pk).update(is_active=False)
    IntentModel.objects.filter(pk=first.pk).update(is_active=True)
    assert active_intent_classifier(trained_org.pk)[1] == 2  # read at most every ACTIVE_CHECK_SECONDS
    later = active_models.time.monotonic() + active_models.ACTIVE_CHECK_SECONDS + 0.1
    monkeypatch.setattr(active_models.time, "monotonic", lambda: later)
    assert active_intent_classifier(trained_org.pk)[1] == 1
