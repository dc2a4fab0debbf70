"""Whether a customer has their chat open right now: the chat websocket counts its
connections per conversation in the cache (Redis in production, so every web process sees
the same count). Used to ask for a rating in the widget, or else by email."""

from django.core.cache import cache

# A crashed process never decrements its count; the key then expires on its own.
PRESENCE_TTL_SECONDS = 6 * 3600


def _presence_key(conversation_id: int) -> str:
    return f"chat-presence:{conversation_id}"


def chat_presence_join(*, conversation_id: int) -> None:
    key = _presence_key(conversation_id)
    cache.add(key, 0, timeout=PRESENCE_TTL_SECONDS)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=PRESENCE_TTL_SECONDS)
    cache.touch(key, PRESENCE_TTL_SECONDS)


def chat_presence_leave(*, conversation_id: int) -> None:
    key = _presence_key(conversation_id)
    try:
        if cache.decr(key) <= 0:
            cache.delete(key)
    except ValueError:  # already expired
        pass


def chat_is_online(*, conversation_id: int) -> bool:
    return int(cache.get(_presence_key(conversation_id)) or 0) > 0
