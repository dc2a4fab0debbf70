# ruff: noqa: RUF001
"""The assistant helping an agent on the ticket page: a reply drafted from the knowledge base,
with the articles it cites, for the customer's latest question. Offline by default (the
sentences of the best article that answer, as the chat assistant answers); written by the
configured LLM from the same passages when there is one. The desk stores the suggestion and
what the agent did with it (tickets.services.suggestion_decide)."""

from typing import Any

from agents.dialog import content_words
from agents.language import detect_language
from agents.pipeline import HUMAN_WORDS, answer_threshold, grounded_answer
from config.errors import DomainError
from knowledge.search import kb_search
from tickets import services
from tickets.models import Message, MessageRole, ReplySuggestion, Ticket

LOOK_BACK = 20

GREETING = {"en": "Hi {name},", "zh": "{name}您好，"}
CLOSING = {"en": "More in our help centre:", "zh": "详情请见帮助中心："}


def _question(messages: list[Message]) -> tuple[Message, str] | None:
    """The customer's latest real question (a bare "a human, please" is not one) and the query
    it resolved to when the assistant answered it (a follow-up joined to what came before)."""
    resolved = {
        m.metadata.get("in_reply_to"): str(m.metadata.get("resolved_query") or "")
        for m in messages
        if m.role == MessageRole.BOT and m.metadata
    }
    customer = [m for m in messages if m.role == MessageRole.CUSTOMER and m.text.strip()]
    for message in reversed(customer):
        words = content_words(message.text)
        asks_person = bool(HUMAN_WORDS.search(message.text)) and len(words) <= 5
        nudge = not words and message.text.isascii()  # "Are you there?", "hello?"
        if not (asks_person or nudge):
            return message, resolved.get(message.seq) or message.text
    return None


def reply_suggest(*, ticket: Ticket, agent: Any) -> ReplySuggestion:
    """Draft a reply to the customer's latest question and store it as a pending suggestion.
    DomainError when there is nothing to answer or no article answers it."""
    from agents.llm import llm_answer

    if ticket.conversation_id is None:
        raise DomainError("This ticket has no conversation to answer yet.")
    messages = list(Message.objects.filter(conversation_id=ticket.conversation_id).order_by("-seq")[:LOOK_BACK])[::-1]
    found = _question(messages)
    if found is None:
        raise DomainError("The customer has not asked a question yet.")
    message, query = found
    language = "zh" if detect_language(query) == "zh" else "en"
    result = kb_search(organization_id=ticket.organization_id, query=query[:2000], k=3, language=language)
    threshold = answer_threshold(language)
    passages = [{"title": h.title, "url": h.url, "text": h.text, "similarity": h.similarity} for h in result.hits]
    if not passages or result.confidence < threshold:
        raise DomainError("No article in the knowledge base answers this; write your own reply.")
    answer, citations = grounded_answer(passages, threshold, query, language)
    generated = llm_answer(question=query, passages=passages).text
    name = (ticket.customer.name or "").split(" ")[0] or ("there" if language == "en" else "")
    lines = [GREETING[language].format(name=name), generated or answer]
    lines.append(CLOSING[language] + "\n" + "\n".join(f"{c['title']}: {c['url']}" for c in citations))
    return services.suggestion_record(
        ticket=ticket,
        agent=agent,
        text="\n\n".join(lines),
        citations=citations,
        in_reply_to_seq=message.seq,
        generated=bool(generated),
    )
