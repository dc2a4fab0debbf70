"""The assistant as one LangChain runnable over its stages:

    normalise → language → embed → sentiment → intent → retrieve → respond → escalation decision

Each stage reads and extends one state dict and records its own latency. The chain decides;
it writes nothing. agents.services.assistant_reply stores what it decided."""

import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from langchain_core.runnables import Runnable, RunnableLambda

from agents.active_models import serving_intent, serving_sentiment
from agents.intents import FALLBACK
from agents.language import detect_language
from agents.sentiment import sentiment_engine, sentiment_score, sentiment_trend
from knowledge import embeddings
from knowledge.search import kb_search
from tickets.rules import HIGH_VALUE_VIP_TIERS, NEGATIVE_SENTIMENT, VERY_NEGATIVE_SENTIMENT

State = dict[str, Any]

# The assistant reads this much of a message (a message itself may hold tickets.rules.MESSAGE_MAX_CHARS).
ASSISTANT_READS_CHARS = 2000

HUMAN_WORDS = re.compile(
    r"\b(human|real person|a person|someone real|an? (live )?agent|representative|operator|manager|supervisor)\b"
    r"|人工|客服",
    re.IGNORECASE,
)
SMALL_TALK = {
    "greeting": "Hi! I'm the {organization} assistant. Ask me anything: I answer from our help articles, "
    "and I can bring in a person whenever you like.",
    "goodbye": "Glad I could help. Have a great day!",
}
HANDOFF_TEXT = (
    "I'm passing this conversation to a member of our support team now; they can see everything "
    "you've written. Someone will reply here shortly."
)
DONT_KNOW_TEXT = (
    "I'm not sure about that, and I'd rather not guess. Would you like me to connect you with a person? "
    'Just say "human".'
)


@dataclass
class ConversationContext:
    organization_id: int
    organization_name: str = ""  # the assistant introduces itself as this organization's
    vip_tier: str = "none"
    previous_scores: list[float] = field(default_factory=list)  # the customer's earlier messages
    previous_fallbacks: int = 0  # consecutive bot turns that could not answer, just before this one
    conversation_id: int | None = None  # places the conversation in an arm of a running A/B test


def _timed(name: str, work: Callable[[State], dict[str, Any]], state: State) -> State:
    started = time.perf_counter()
    produced = work(state)
    timings = {**state.get("timings_ms", {}), name: round((time.perf_counter() - started) * 1000, 2)}
    return {**state, **produced, "timings_ms": timings}


def _normalise(state: State) -> dict[str, Any]:
    text = unicodedata.normalize("NFKC", state["text"])
    return {"normalised": " ".join(text.split())[:ASSISTANT_READS_CHARS]}


def _language(state: State) -> dict[str, Any]:
    return {"language": detect_language(state["normalised"])}


def _embed(state: State) -> dict[str, Any]:
    """The message's sentence embedding, once: intent and retrieval both read it."""
    return {"vector": embeddings.embed_query(state["normalised"])}


def _tests(state: State, placed: tuple[int, str] | None) -> list[list[Any]]:
    """The A/B tests that decided this turn, as [test pk, arm] pairs."""
    return [*state.get("tests", []), [placed[0], placed[1]]] if placed else state.get("tests", [])


def _sentiment(state: State) -> dict[str, Any]:
    context: ConversationContext = state["context"]
    serving = serving_sentiment(state["language"], context.organization_id, context.conversation_id)
    model, engine = sentiment_engine(state["language"], serving.model, serving.version)
    score = round(sentiment_score(state["normalised"], state["language"], model=model, vector=state.get("vector")), 4)
    return {
        "sentiment": score,
        "sentiment_trend": round(sentiment_trend([*context.previous_scores, score]), 4),
        "sentiment_engine": engine,
        "tests": _tests(state, serving.test),
    }


def _intent(state: State) -> dict[str, Any]:
    context: ConversationContext = state["context"]
    serving = serving_intent(context.organization_id, context.conversation_id)
    tests = _tests(state, serving.test)
    if serving.model is None:
        return {"intent": FALLBACK, "intent_confidence": 0.0, "intent_model_version": None, "tests": tests}
    prediction = serving.model.predict(state["normalised"], vector=state["vector"])
    return {
        "intent": prediction.intent,
        "intent_confidence": round(prediction.confidence, 4),
        "intent_model_version": serving.version,
        "tests": tests,
    }


def _retrieve(state: State) -> dict[str, Any]:
    if state["intent"] in SMALL_TALK or state["intent"] == "human_request":
        return {"passages": [], "retrieval_confidence": 0.0}
    result = kb_search(
        organization_id=state["context"].organization_id, query=state["normalised"], k=3, query_vector=state["vector"]
    )
    passages = [{"title": h.title, "url": h.url, "text": h.text, "similarity": h.similarity} for h in result.hits]
    return {"passages": passages, "retrieval_confidence": result.confidence}


def _passage_body(text: str) -> str:
    """The passage without the title line the chunker puts first."""
    lines = text.split("\n", 1)
    return (lines[1] if len(lines) > 1 else lines[0]).strip()


def grounded_answer(passages: list[dict[str, Any]], threshold: float) -> tuple[str, list[dict[str, str]]]:
    """Quote the best-ranked passage and cite it, plus the runner-up when it is relevant too."""
    best = passages[0]
    relevant = [best] + [p for p in passages[1:2] if p["similarity"] >= threshold]
    body = re.sub(r"(\*\*|__|^#+\s*)", "", _passage_body(best["text"]) or best["title"], flags=re.MULTILINE)
    sentences = re.split(r"(?<=[.!?])\s+", body)
    excerpt = " ".join(sentences[:3]).strip()
    text = f"{excerpt}\n\n(From “{best['title']}”.)"
    sources = []
    for passage in relevant[:2]:
        citation = {"title": passage["title"], "url": passage["url"]}
        if citation not in sources:
            sources.append(citation)
    return text, sources


def _respond(state: State) -> dict[str, Any]:
    intent = state["intent"]
    threshold = settings.CONCIERGE_ANSWER_MIN_CONFIDENCE
    if intent in SMALL_TALK:
        context: ConversationContext = state["context"]
        name = context.organization_name or "support"
        return {"reply": SMALL_TALK[intent].format(organization=name), "sources": [], "answered": True}
    if intent == "human_request" or HUMAN_WORDS.search(state["normalised"]):
        return {"reply": HANDOFF_TEXT, "sources": [], "answered": True}
    if state["passages"] and state["retrieval_confidence"] >= threshold:
        from agents.llm import llm_answer

        reply, sources = grounded_answer(state["passages"], threshold)
        generated = llm_answer(question=state["normalised"], passages=state["passages"])
        return {"reply": generated or reply, "sources": sources, "answered": True, "generated": bool(generated)}
    return {"reply": DONT_KNOW_TEXT, "sources": [], "answered": False}


def _escalation(state: State) -> dict[str, Any]:
    context: ConversationContext = state["context"]
    reasons = []
    if state["intent"] == "human_request" or HUMAN_WORDS.search(state["normalised"]):
        reasons.append("the customer asked for a person")
    if state["intent"] == "complaint":
        reasons.append("complaint")
    if state["sentiment"] <= VERY_NEGATIVE_SENTIMENT:
        reasons.append("very negative sentiment")
    elif state["sentiment_trend"] <= -0.25 and state["sentiment"] < NEGATIVE_SENTIMENT:
        reasons.append("sentiment falling")
    if not state["answered"] and context.previous_fallbacks >= 1:
        reasons.append("the assistant could not answer twice in a row")
    if context.vip_tier in HIGH_VALUE_VIP_TIERS and state["sentiment"] < NEGATIVE_SENTIMENT:
        reasons.append(f"{context.vip_tier} VIP customer is unhappy")
    handoff = bool(reasons)
    reply = state["reply"]
    if handoff and reply != HANDOFF_TEXT:
        reply = f"{reply}\n\n{HANDOFF_TEXT}" if state["answered"] else HANDOFF_TEXT
    return {"handoff": handoff, "escalation_reasons": reasons, "reply": reply}


STAGES: list[tuple[str, Callable[[State], dict[str, Any]]]] = [
    ("normalise", _normalise),
    ("language", _language),
    ("embed", _embed),
    ("sentiment", _sentiment),
    ("intent", _intent),
    ("retrieve", _retrieve),
    ("respond", _respond),
    ("escalate", _escalation),
]


def _run_stages(state: State) -> State:
    for name, work in STAGES:
        state = _timed(name, work, state)
    return state


def build_chain() -> Runnable:
    """The stages as one LangChain runnable. One runnable, not one per stage: eight nested
    runnables cost about 5 ms of bookkeeping a turn (callbacks, configs), a fifth of the
    pipeline's own work, and each stage records its own latency anyway."""
    return RunnableLambda(_run_stages, name="assistant")


CHAIN = build_chain()


def run_pipeline(text: str, context: ConversationContext) -> State:
    started = time.perf_counter()
    state = CHAIN.invoke({"text": text, "context": context})
    state["timings_ms"]["total"] = round((time.perf_counter() - started) * 1000, 2)
    return state


WARM_ORGANIZATIONS = 50


def warm() -> None:
    """Load what the first turns would otherwise load (the intent models, from their database
    rows; the keyword indexes, built from the passages; the code paths of the stages up to
    retrieval, so no LLM is asked), for the organizations with a serving intent model, most
    recently trained first."""
    from agents.models import IntentModel

    organizations = list(
        IntentModel.objects.filter(is_active=True)
        .order_by("-created_at")
        .values_list("organization_id", "organization__name")[:WARM_ORGANIZATIONS]
    )
    reading = STAGES[: [name for name, _ in STAGES].index("retrieve") + 1]
    for organization_id, name in organizations:
        state: State = {
            "text": "hello, when will my order arrive?",
            "context": ConversationContext(organization_id, name),
        }
        for stage, work in reading:
            state = _timed(stage, work, state)
