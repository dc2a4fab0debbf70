"""Encryption at rest for customers' personal data: email, phone and message texts.

Keys come from FIELD_ENCRYPTION_KEY: one or more Fernet keys, comma-separated. The first
encrypts; every one decrypts, so a key is rotated by putting a new key first, running
``manage.py encryption_rotate`` (which re-encrypts every row and recomputes the lookup
hashes), then removing the old key. Without FIELD_ENCRYPTION_KEY a key is derived from
SECRET_KEY, so data is never stored in the clear; changing SECRET_KEY then needs the same
rotation (old SECRET_KEY-derived key listed second).

Encrypted values are stored as ``fernet:<token>``; a value without that prefix is read as
written (rows from before encryption), and the data migration encrypts those."""

import base64
import hashlib
import hmac
import threading
from collections import OrderedDict
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

PREFIX = "fernet:"


def _derived_key(secret: str) -> bytes:
    digest = hashlib.sha256(b"concierge-field-encryption:" + secret.encode()).digest()
    return base64.urlsafe_b64encode(digest)


@lru_cache(maxsize=4)
def _keys(configured: str, secret: str) -> tuple[bytes, ...]:
    keys = [k.strip().encode() for k in configured.split(",") if k.strip()]
    return tuple(keys) if keys else (_derived_key(secret),)


def _current_keys() -> tuple[bytes, ...]:
    return _keys(settings.FIELD_ENCRYPTION_KEY, settings.SECRET_KEY)


@lru_cache(maxsize=4)
def _cipher(keys: tuple[bytes, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def cipher() -> MultiFernet:
    return _cipher(_current_keys())


class _Recent:
    """The texts of the tokens this process encrypted or decrypted lately, by keys and token. A
    chat turn reads its conversation's recent messages (written by the same process a turn
    before) every turn, and decrypting one took ~60 us. A token is unique (Fernet's random IV)
    and decrypts to one text under the keys it was read with; a key change (other keys) misses.
    Short texts only, and a bounded number: a few MB at most."""

    SIZE = 4096
    MAX_TOKEN_CHARS = 1024

    def __init__(self) -> None:
        self.texts: OrderedDict[tuple[tuple[bytes, ...], str], str] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[tuple[bytes, ...], str]) -> str | None:
        with self.lock:
            text = self.texts.get(key)
            if text is not None:
                self.texts.move_to_end(key)
            return text

    def put(self, key: tuple[tuple[bytes, ...], str], text: str) -> None:
        if len(key[1]) > self.MAX_TOKEN_CHARS:
            return
        with self.lock:
            self.texts[key] = text
            if len(self.texts) > self.SIZE:
                self.texts.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.texts.clear()


_recent = _Recent()


def encrypt(value: str) -> str:
    if value == "" or value.startswith(PREFIX):
        return value
    keys = _current_keys()
    token = _cipher(keys).encrypt(value.encode()).decode()
    _recent.put((keys, token), value)
    return PREFIX + token


def decrypt(value: str) -> str:
    if not value.startswith(PREFIX):
        return value
    keys, token = _current_keys(), value[len(PREFIX) :]
    text = _recent.get((keys, token))
    if text is not None:
        return text
    try:
        text = _cipher(keys).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("A stored value cannot be decrypted with the configured FIELD_ENCRYPTION_KEY.") from exc
    _recent.put((keys, token), text)
    return text


def blind_index(value: str) -> str:
    """A keyed hash for equality lookups on an encrypted column (emails are compared lower-cased)."""
    if not value:
        return ""
    key = hashlib.sha256(b"concierge-blind-index:" + _current_keys()[0]).digest()
    return hmac.new(key, value.strip().lower().encode(), hashlib.sha256).hexdigest()


def validate_key(value: str) -> None:
    """Raise ValueError when FIELD_ENCRYPTION_KEY holds something that is not a Fernet key."""
    for key in (k.strip() for k in value.split(",") if k.strip()):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError) as exc:
            raise ValueError(
                "FIELD_ENCRYPTION_KEY must be Fernet keys (Fernet.generate_key()), comma-separated."
            ) from exc
