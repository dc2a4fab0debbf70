"""Generated answers through an OpenAI-compatible endpoint. The endpoint is the one outside
service we stand in for: a small HTTP server on loopback speaking the chat-completions API."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import override_settings

from agents.pipeline import ConversationContext, run_pipeline
from tests.support import send_body


class FakeChatCompletions(BaseHTTPRequestHandler):
    delay = 0.0
    requests: list[dict] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeChatCompletions.requests.append(body)
        time.sleep(self.delay)
        reply = {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "Refunds take 2 business days (generated)."},
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        send_body(self, json.dumps(reply).encode(), "application/json")

    def log_message(self, *args):
        pass


@pytest.fixture
def llm_server():
    FakeChatCompletions.requests = []
    FakeChatCompletions.delay = 0.0
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeChatCompletions)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


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
