"""Optional generated answers: an OpenAI-compatible chat model (OpenAI, Ollama, vLLM, llama.cpp's
server) through LangChain, writing from the retrieved passages only. With no LLM_* settings,
when the call fails or runs past LLM_TIMEOUT_SECONDS, or when a sentence it wrote is not
supported by the passages (agents.grounding), the caller keeps its composed answer. While a
stream is open (``answer_streamed``, the chat websocket's), the words go to it as they are
written. Nothing else imports the SDK."""

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from pydantic import SecretStr

from config.clients import process_client

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You are a customer-support assistant. Answer the customer's question using only the numbered "
    "passages. If they do not contain the answer, say you don't know and offer a human colleague. "
    "Be brief and friendly. Do not invent policies, prices or dates."
)

# Where the words of an answer go as the model writes them: the text so far, each time it grows.
_stream: ContextVar[Callable[[str], None] | None] = ContextVar("answer_stream", default=None)


@contextmanager
def answer_streamed(sink: Callable[[str], None]) -> Iterator[None]:
    """Within the block (and the sync calls it awaits, which copy the context), a generated
    answer is streamed to ``sink`` as it is written."""
    token = _stream.set(sink)
    try:
        yield
    finally:
        _stream.reset(token)


@dataclass(frozen=True)
class LlmAnswer:
    """What the LLM wrote, when it may be used (``text``), and why not otherwise: ``outcome`` is
    "generated", "off" (none configured, or nothing to write from), "failed" (error, timeout,
    empty) or "unsupported" (a sentence the passages do not support, listed)."""

    text: str | None
    outcome: str
    unsupported: list[str] = field(default_factory=list)


def llm_configured() -> bool:
    return bool(settings.LLM_BASE_URL or settings.LLM_PROVIDER) and bool(settings.LLM_MODEL)


@process_client
def _chat_model(base_url: str, model: str, api_key: str, timeout: float) -> Any:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=model,
        base_url=base_url or None,
        api_key=SecretStr(api_key or "not-needed"),  # local servers such as Ollama take any key
        timeout=timeout,
        max_retries=0,
        temperature=0.1,
    )


def warm() -> None:
    """Make the chat model's client now, when one is configured (it makes no request)."""
    if llm_configured():
        _chat_model(settings.LLM_BASE_URL, settings.LLM_MODEL, settings.LLM_API_KEY, settings.LLM_TIMEOUT_SECONDS)


def _written(model: Any, messages: list[tuple[str, str]]) -> str:
    """The model's whole answer; streamed to the open stream, if any, as it comes. A stream
    that runs past LLM_TIMEOUT_SECONDS in all is given up (TimeoutError)."""
    sink = _stream.get()
    if sink is None:
        return str(getattr(model.invoke(messages), "content", "") or "")
    deadline = time.monotonic() + settings.LLM_TIMEOUT_SECONDS
    text = ""
    for chunk in model.stream(messages):
        piece = getattr(chunk, "content", "")
        if isinstance(piece, str) and piece:
            text += piece
            sink(text)
        if time.monotonic() > deadline:
            raise TimeoutError(f"the answer took longer than {settings.LLM_TIMEOUT_SECONDS} s")
    return text


def llm_answer(*, question: str, passages: list[dict[str, Any]]) -> LlmAnswer:
    from agents.grounding import support_check

    if not llm_configured() or not passages:
        return LlmAnswer(None, "off")
    numbered = "\n\n".join(f"[{n}] {p['title']}\n{p['text']}" for n, p in enumerate(passages, start=1))
    model = _chat_model(settings.LLM_BASE_URL, settings.LLM_MODEL, settings.LLM_API_KEY, settings.LLM_TIMEOUT_SECONDS)
    messages = [("system", SYSTEM_PROMPT), ("human", f"Passages:\n{numbered}\n\nQuestion: {question}")]
    try:
        text = _written(model, messages).strip()
    except Exception:  # any failure of the outside service falls back to the composed answer
        logger.warning("LLM answer failed; using the composed answer", exc_info=True)
        return LlmAnswer(None, "failed")
    if not text:
        return LlmAnswer(None, "failed")
    verdict = support_check(text, [f"{p['title']}. {p['text']}" for p in passages])
    if not verdict.supported:
        logger.info("LLM answer set aside: %d unsupported sentence(s)", len(verdict.unsupported))
        return LlmAnswer(None, "unsupported", verdict.unsupported)
    return LlmAnswer(text, "generated")


def llm_ping() -> str:
    """The endpoint lists its models (GET /models) within two seconds."""
    import httpx

    base = (settings.LLM_BASE_URL or "https://api.openai.com/v1").rstrip("/")
    headers = {"Authorization": f"Bearer {settings.LLM_API_KEY}"} if settings.LLM_API_KEY else {}
    response = httpx.get(f"{base}/models", headers=headers, timeout=2.0)
    response.raise_for_status()
    return f"{settings.LLM_MODEL} at {base}"
