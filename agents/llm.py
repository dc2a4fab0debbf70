"""Optional generated answers: an OpenAI-compatible chat model (OpenAI, Ollama, vLLM) through
LangChain, writing from the retrieved passages only. With no LLM_* settings, or when the call
fails or times out, the caller keeps its grounded answer. Nothing else imports the SDK."""

import logging
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


def llm_answer(*, question: str, passages: list[dict[str, Any]]) -> str | None:
    if not llm_configured() or not passages:
        return None
    numbered = "\n\n".join(f"[{n}] {p['title']}\n{p['text']}" for n, p in enumerate(passages, start=1))
    model = _chat_model(settings.LLM_BASE_URL, settings.LLM_MODEL, settings.LLM_API_KEY, settings.LLM_TIMEOUT_SECONDS)
    try:
        message = model.invoke([("system", SYSTEM_PROMPT), ("human", f"Passages:\n{numbered}\n\nQuestion: {question}")])
    except Exception:  # any failure of the outside service falls back to the grounded answer
        logger.warning("LLM answer failed; using the grounded answer", exc_info=True)
        return None
    text = str(getattr(message, "content", "") or "").strip()
    return text or None


def llm_ping() -> str:
    """The endpoint lists its models (GET /models) within two seconds."""
    import httpx

    base = (settings.LLM_BASE_URL or "https://api.openai.com/v1").rstrip("/")
    headers = {"Authorization": f"Bearer {settings.LLM_API_KEY}"} if settings.LLM_API_KEY else {}
    response = httpx.get(f"{base}/models", headers=headers, timeout=2.0)
    response.raise_for_status()
    return f"{settings.LLM_MODEL} at {base}"
