"""Calling an organization's actions from a chat turn: which action fits, what it still needs
to know, the HTTPS call (authenticated, bounded by the action's timeout, never following a
redirect, audited with its inputs and outcome but never its secret) and the reply made from
the result. A failure of any kind is an outcome, never an exception: the turn hands off."""

import base64
import functools
import hashlib
import hmac
import json
import re
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
from django.conf import settings

from agents.actions.models import FOUND_INPUTS, PROFILE_INPUTS, ActionAuth, AssistantAction
from agents.dialog import entities_find, say

# A customer phrase this close (cosine) to one of an action's examples calls it.
EXAMPLE_SIMILARITY = 0.72
RESULT_MAX_BYTES = 64 * 1024
PLACEHOLDER = re.compile(r"\{([A-Za-z_][\w.]*)\}")
MASK = "********"


@dataclass(frozen=True)
class ActionSpec:
    """An active action as the turn reads it (its example phrases embedded once per version)."""

    pk: int
    name: str
    intent: str
    method: str
    url: str
    inputs: tuple[str, ...]
    auth: str
    auth_username: str
    auth_header: str
    auth_secret: str
    timeout: float
    requires_identified: bool
    reply_en: str
    reply_zh: str
    vectors: Any = None  # one row per example phrase, L2-normalised


@dataclass(frozen=True)
class CustomerFacts:
    """What the assistant knows for certain about the customer of a conversation."""

    identified: bool = False  # the widget verified who they are
    external_id: str = ""
    email: str = ""
    name: str = ""


@dataclass
class ActionOutcome:
    ok: bool
    detail: str  # "200", "timeout", "HTTP 503", "not JSON", ...
    result: dict[str, Any] = field(default_factory=dict)
    http_status: int | None = None
    elapsed_ms: float = 0.0


_vectors: dict[tuple[int, Any], Any] = {}  # (pk, updated_at) -> example vectors
_vectors_lock = threading.Lock()


def _example_vectors(row: AssistantAction) -> Any:
    key = (row.pk, row.updated_at)
    with _vectors_lock:
        if key in _vectors:
            return _vectors[key]
    phrases = [line.strip() for line in row.examples.splitlines() if line.strip()]
    if not phrases:
        return None
    from knowledge import embeddings

    vectors = embeddings.embed(phrases)
    with _vectors_lock:
        _vectors[key] = vectors
    return vectors


def organization_actions(organization_id: int) -> list[ActionSpec]:
    """The organization's active actions, read at most every ACTIVE_CHECK_SECONDS per process."""
    from agents.active_models import recent_read

    def read() -> list[ActionSpec]:
        rows = AssistantAction.objects.filter(organization_id=organization_id, is_active=True).order_by("name")
        return [
            ActionSpec(
                pk=row.pk,
                name=row.name,
                intent=row.intent,
                method=row.method,
                url=row.url,
                inputs=tuple(row.input_names()),
                auth=row.auth,
                auth_username=row.auth_username,
                auth_header=row.auth_header,
                auth_secret=row.auth_secret,
                timeout=row.timeout_seconds,
                requires_identified=row.requires_identified,
                reply_en=row.reply_en,
                reply_zh=row.reply_zh,
                vectors=_example_vectors(row),
            )
            for row in rows
        ]

    return list(recent_read("actions", organization_id, read))


def action_fitting(
    actions: list[ActionSpec], *, intent: str, vector: Any, text: str, pending: tuple[str, str] | None = None
) -> ActionSpec | None:
    """The action this turn calls: the one that asked for an input this message gives, else the
    one for the turn's intent, else the one whose example phrase is nearest (and near enough)."""
    by_name = {spec.name: spec for spec in actions}
    if pending and pending[0] in by_name:
        wanted = pending[1]
        if wanted not in FOUND_INPUTS or wanted in entities_find(text):
            return by_name[pending[0]]
    for spec in actions:
        if spec.intent and spec.intent == intent:
            return spec
    best, best_score = None, EXAMPLE_SIMILARITY
    for spec in actions:
        if spec.vectors is not None and vector is not None:
            score = float(np.max(spec.vectors @ np.asarray(vector, dtype=np.float32)))
            if score >= best_score:
                best, best_score = spec, score
    return best


def inputs_gather(
    spec: ActionSpec, *, entities: dict[str, str], customer: CustomerFacts, text: str, pending: tuple[str, str] | None
) -> tuple[dict[str, str], list[str]]:
    """(the inputs known, the ones to ask the customer for, in order)."""
    profile = {"customer_id": customer.external_id, "customer_email": customer.email, "customer_name": customer.name}
    values: dict[str, str] = {}
    missing: list[str] = []
    for name in spec.inputs:
        if name in PROFILE_INPUTS:
            value = profile[name]
        elif name in FOUND_INPUTS:
            value = entities.get(name, "")
        elif pending and pending == (spec.name, name):
            value = text.strip()
        else:
            value = ""
        if value:
            values[name] = value
        else:
            missing.append(name)
    return values, missing


def _verify() -> Any:
    bundle = settings.CONCIERGE_ACTIONS_CA_BUNDLE
    return _tls_context(bundle) if bundle else True


@functools.lru_cache(maxsize=4)
def _tls_context(bundle: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=bundle)


def _request(spec: ActionSpec, values: dict[str, str]) -> tuple[str, dict[str, Any], dict[str, str], bytes]:
    """(url, query parameters, headers, body) of the call."""
    used = set(PLACEHOLDER.findall(spec.url))
    url = PLACEHOLDER.sub(lambda m: quote(values.get(m.group(1), ""), safe=""), spec.url)
    rest = {name: value for name, value in values.items() if name not in used}
    params: dict[str, Any] = rest if spec.method == "GET" else {}
    body = json.dumps(rest, ensure_ascii=False).encode() if spec.method == "POST" else b""
    headers = {"Accept": "application/json", "User-Agent": "Concierge-assistant"}
    if spec.method == "POST":
        headers["Content-Type"] = "application/json"
    if spec.auth == ActionAuth.BEARER:
        headers["Authorization"] = f"Bearer {spec.auth_secret}"
    elif spec.auth == ActionAuth.BASIC:
        pair = base64.b64encode(f"{spec.auth_username}:{spec.auth_secret}".encode()).decode()
        headers["Authorization"] = f"Basic {pair}"
    elif spec.auth == ActionAuth.HEADER:
        headers[spec.auth_header] = spec.auth_secret
    elif spec.auth == ActionAuth.HMAC:
        target = str(httpx.URL(url, params=params))
        headers.update(request_signature(spec.auth_secret, spec.method, target, body, int(time.time())))
    return url, params, headers, body


def request_signature(secret: str, method: str, url: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The HMAC headers: hex HMAC-SHA256 over "timestamp.METHOD.url.body" with the action's secret.
    The receiving side recomputes it and refuses old timestamps."""
    signed = f"{timestamp}.{method}.{url}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return {"X-Concierge-Timestamp": str(timestamp), "X-Concierge-Signature": f"sha256={digest}"}


def _masked(headers: dict[str, str], spec: ActionSpec) -> dict[str, str]:
    secret_headers = {"authorization", spec.auth_header.lower(), "x-concierge-signature"}
    return {name: MASK if name.lower() in secret_headers else value for name, value in headers.items()}


def action_call(
    spec: ActionSpec, values: dict[str, str], *, organization_id: int, conversation_id: int | None
) -> ActionOutcome:
    """Call the endpoint once and audit the call (ai.action_call), whatever its outcome."""
    from tenancy.audit import audit_record

    url, params, headers, body = _request(spec, values)
    started = time.perf_counter()
    outcome = _send(spec, url, params, headers, body)
    outcome.elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    audit_record(
        organization_id=organization_id,
        action="ai.action_call",
        actor="assistant",
        object_type="conversation",
        object_id=conversation_id or "",
        data={
            "action": spec.name,
            "method": spec.method,
            "url": url,
            "inputs": values,
            "headers": _masked(headers, spec),
            "outcome": "ok" if outcome.ok else "failed",
            "detail": outcome.detail,
            "http_status": outcome.http_status,
            "elapsed_ms": outcome.elapsed_ms,
        },
    )
    return outcome


def _send(spec: ActionSpec, url: str, params: dict[str, Any], headers: dict[str, str], body: bytes) -> ActionOutcome:
    try:
        client = httpx.Client(verify=_verify(), timeout=spec.timeout, follow_redirects=False)
        with client, client.stream(spec.method, url, params=params, headers=headers, content=body or None) as response:
            data = b""
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > RESULT_MAX_BYTES:
                    return ActionOutcome(False, "answer too large", http_status=response.status_code)
    except httpx.TimeoutException:
        return ActionOutcome(False, "timeout")
    except httpx.HTTPError as error:
        return ActionOutcome(False, f"unreachable: {type(error).__name__}")
    if not 200 <= response.status_code < 300:
        return ActionOutcome(False, f"HTTP {response.status_code}", http_status=response.status_code)
    try:
        result = json.loads(data)
    except ValueError:
        return ActionOutcome(False, "not JSON", http_status=response.status_code)
    if not isinstance(result, dict):
        return ActionOutcome(False, "not a JSON object", http_status=response.status_code)
    return ActionOutcome(True, str(response.status_code), result, response.status_code)


def _lookup(fields: dict[str, Any], path: str) -> Any:
    value: Any = fields
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_shown(item) for item in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def action_reply(spec: ActionSpec, outcome: ActionOutcome, values: dict[str, str], language: str) -> str | None:
    """The reply made from the result; None when the template names a field the result lacks."""
    fields = {**values, **outcome.result}
    template = (spec.reply_zh if language == "zh" else "") or spec.reply_en
    if not template:
        shown = [
            f"{key.replace('_', ' ')}: {_shown(v)}" for key, v in outcome.result.items() if not isinstance(v, dict)
        ]
        return say("action_result", language, fields="; ".join(shown)) if shown else None
    missing = [path for path in PLACEHOLDER.findall(template) if _lookup(fields, path) in (None, "")]
    if missing:
        return None
    return PLACEHOLDER.sub(lambda m: _shown(_lookup(fields, m.group(1))), template)


def input_question(name: str, language: str) -> str:
    """What the assistant asks to get an input."""
    if name in FOUND_INPUTS:
        return say(f"ask_{name}", language)
    return say("ask_input", language, name=name.replace("_", " "))
