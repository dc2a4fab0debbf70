"""Generated answers through an OpenAI-compatible endpoint. The endpoint is the one outside
service we stand in for: a small HTTP server on loopback speaking the chat-completions API."""

import json

import pytest
from django.test import override_settings

from agents.pipeline import ConversationContext, run_pipeline
from tests.agents.llm_server import FakeChatCompletions


@pytest.mark.django_db
def test_llm_writes_the_answer_from_retrieved_passages(trained_org, llm_server):
    with override_settings(LLM_BASE_URL=llm_server, LLM_MODEL="tiny", LLM_API_KEY="k"):
        state = run_pipeline("when will I get my refund?", ConversationContext(trained_org.pk))
    assert state["reply"] == "Refunds take 2 business days (generated)." and state["generated"] is True
    assert state["sources"][0]["title"] == "Returns and refunds"  # citations still come from retrieval
    prompt = json.dumps(FakeChatCompletions.requests[0]["messages"])
    assert "Returns and refunds" in prompt and "when will I get my refund?" in prompt


@pytest.mark.django_db
def test_slow_or_missing_llm_falls_back_to_the_grounded_answer(trained_org, llm_server):
    FakeChatCompletions.delay = 2.0
    with override_settings(LLM_BASE_URL=llm_server, LLM_MODEL="tiny", LLM_TIMEOUT_SECONDS=0.5):
        state = run_pipeline("when will I get my refund?", ConversationContext(trained_org.pk))
    assert state["generated"] is False and "2 business days" in state["reply"]
    with override_settings(LLM_BASE_URL="http://127.0.0.1:9/v1", LLM_MODEL="tiny"):
        state = run_pipeline("when will I get my refund?", ConversationContext(trained_org.pk))
    assert state["generated"] is False and state["sources"]
    # An endpoint without a model is not a configured LLM: the server that is listening there
    # is never called, and the grounded answer stands.
    FakeChatCompletions.requests = []
    with override_settings(LLM_BASE_URL=llm_server, LLM_MODEL="", LLM_TIMEOUT_SECONDS=5):
        state = run_pipeline("when will I get my refund?", ConversationContext(trained_org.pk))
    assert FakeChatCompletions.requests == [] and state["generated"] is False
    # The same server with a model is called (so the assertion above can fail).
    FakeChatCompletions.delay = 0.0
    with override_settings(LLM_BASE_URL=llm_server, LLM_MODEL="tiny", LLM_TIMEOUT_SECONDS=5):
        run_pipeline("when will I get my refund?", ConversationContext(trained_org.pk))
    assert len(FakeChatCompletions.requests) == 1


@pytest.mark.django_db
def test_the_suggested_reply_is_written_by_the_configured_llm(trained_org, llm_server, agent, customer):
    from agents.assist import reply_suggest
    from tests.tickets.factories import TicketFactory
    from tickets import services

    conversation = services.conversation_start(customer=customer)
    services.message_create(conversation=conversation, role="customer", text="when will I get my refund?")
    ticket = TicketFactory(customer=customer, conversation=conversation)
    offline = reply_suggest(ticket=ticket, agent=agent)
    assert offline.generated is False and FakeChatCompletions.requests == []
    with override_settings(LLM_BASE_URL=llm_server, LLM_MODEL="tiny", LLM_API_KEY="k"):
        suggestion = reply_suggest(ticket=ticket, agent=agent)
    assert suggestion.generated is True and "Refunds take 2 business days (generated)." in suggestion.text
    assert suggestion.citations[0]["title"] == "Returns and refunds"  # cited from retrieval, not the LLM
    assert "when will I get my refund?" in json.dumps(FakeChatCompletions.requests[0]["messages"])


UNSUPPORTED = "Refunds are instant, and every return comes with a free tent as a thank-you."


@pytest.mark.django_db
def test_a_generated_answer_the_passages_do_not_support_is_set_aside(trained_org, llm_server):
    context = ConversationContext(trained_org.pk)
    with override_settings(LLM_BASE_URL=llm_server, LLM_MODEL="tiny"):
        supported = run_pipeline("when will I get my refund?", context)
        FakeChatCompletions.answer = UNSUPPORTED
        invented = run_pipeline("when will I get my refund?", context)
        # A number the passages never state reads "similar" to a model: it is checked on its own.
        FakeChatCompletions.answer = "We refund to the original payment method within 9 business days."
        wrong_number = run_pipeline("when will I get my refund?", context)
    assert supported["generated"] is True and supported["llm"] == "generated"
    for state in (invented, wrong_number):
        assert state["generated"] is False and state["llm"] == "unsupported"
        assert "2 business days" in state["reply"]  # the composed answer, from the article's sentences
    assert invented["llm_unsupported"] == [UNSUPPORTED]
    assert "9 business days" in wrong_number["llm_unsupported"][0]


@pytest.mark.django_db
def test_the_suggested_reply_is_guarded_the_same_way(trained_org, llm_server, agent, customer):
    from agents.assist import reply_suggest
    from tests.tickets.factories import TicketFactory
    from tickets import services

    conversation = services.conversation_start(customer=customer)
    services.message_create(conversation=conversation, role="customer", text="when will I get my refund?")
    ticket = TicketFactory(customer=customer, conversation=conversation)
    FakeChatCompletions.answer = UNSUPPORTED
    with override_settings(LLM_BASE_URL=llm_server, LLM_MODEL="tiny"):
        suggestion = reply_suggest(ticket=ticket, agent=agent)
    assert FakeChatCompletions.requests and suggestion.generated is False
    assert "free tent" not in suggestion.text and "2 business days" in suggestion.text


def test_the_support_check_on_its_own():
    from agents.grounding import support_check

    article = (
        "Returns and refunds. You can return unused gear within 60 days of delivery for a full refund. "
        "Return shipping is free for members and $6.95 otherwise."
    )
    assert support_check("Members send returns back for free; others pay $6.95.", [article]).supported
    assert support_check("Thanks! Members send returns back for free; others pay $6.95.", [article]).supported
    assert not support_check("The answer to this question is:", [article]).supported  # says nothing
    assert not support_check("You can return gear within 90 days of delivery.", [article]).supported
    verdict = support_check("You can return unused gear within 60 days. We also ship to Mars for free.", [article])
    assert not verdict.supported and verdict.unsupported == ["We also ship to Mars for free."]
    assert support_check(
        "未使用的装备可在送达后60天内退货。", ["未使用的装备可在送达后 60 天 内退货并全额退款。"]
    ).supported
    assert not support_check(
        "我们为所有订单提供免费的澳大利亚快递服务。", ["未使用的装备可在送达后 60 天 内退货并全额退款。"]
    ).supported
