"""Loopback servers that speak the messaging providers' APIs as documented (the WhatsApp Cloud
API on the Graph API, the Telegram Bot API, Twilio's REST API, WeChat's official-account API and
a company's app behind the API channel): each checks what Concierge sends (credentials, the
fields the provider requires) and answers as the provider does, including its errors, and keeps
every request for the test to read."""

import base64
import email.parser
import email.policy
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any = None
    form: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # multipart part name: (filename, bytes)

    @property
    def params(self) -> dict[str, Any]:
        """The call's parameters however they came: a JSON body, or form fields (one value each)."""
        return self.json if isinstance(self.json, dict) else {k: v[0] for k, v in self.form.items()}


Answer = tuple[int, Any]  # status, a JSON-able body (bytes are sent as they are)


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, list[str]], dict[str, tuple[str, bytes]]]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    form: dict[str, list[str]] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename:
            files[name] = (filename, payload)
        else:
            form.setdefault(name, []).append(payload.decode())
    return form, files


class LoopbackProvider:
    """Routes are (method, path regex) → handler(request, match) → (status, body)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.routes: list[tuple[str, re.Pattern[str], Callable[[Request, re.Match[str]], Answer]]] = []
        # Planned answers, one per request in order, to act out outages; None: answer as usual.
        self.failures: list[Answer | None] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(
                    self.command,
                    unquote(url.path),
                    {k: v[0] for k, v in parse_qs(url.query).items()},
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                kind = request.headers.get("content-type", "")
                if kind.startswith("application/json") and body:
                    request.json = json.loads(body)
                elif kind.startswith("application/x-www-form-urlencoded"):
                    request.form = parse_qs(body.decode())
                elif kind.startswith("multipart/form-data"):
                    request.form, request.files = _multipart(kind, body)
                provider.requests.append(request)
                status, answer = provider.answer(request)
                data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header(
                    "Content-Type", "application/octet-stream" if isinstance(answer, bytes) else "application/json"
                )
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def route(self, method: str, pattern: str, handler: Callable[[Request, re.Match[str]], Answer]) -> None:
        self.routes.append((method, re.compile(pattern), handler))

    def answer(self, request: Request) -> Answer:
        planned = self.failures.pop(0) if self.failures else None
        if planned is not None:
            return planned
        for method, pattern, handler in self.routes:
            match = pattern.fullmatch(request.path)
            if method == request.method and match:
                return handler(request, match)
        return 404, {"error": f"no route for {request.method} {request.path}"}

    def to(self, path_pattern: str) -> list[Request]:
        return [r for r in self.requests if re.fullmatch(path_pattern, r.path)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- WhatsApp Cloud API (graph.facebook.com) -------------------------------------------------


def graph_api(token: str, phone_id: str) -> LoopbackProvider:
    server = LoopbackProvider()
    sent = iter(range(1, 10_000))

    def authorised(request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {token}"

    def unauthorised() -> Answer:
        return 401, {"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}}

    def messages(request: Request, match: re.Match[str]) -> Answer:
        if not authorised(request):
            return unauthorised()
        body = request.json or {}
        if match["phone"] != phone_id or body.get("messaging_product") != "whatsapp" or not body.get("to"):
            return 400, {"error": {"message": "(#100) Invalid parameter", "type": "OAuthException", "code": 100}}
        kind = body.get("type")
        if kind == "text" and not (body.get("text") or {}).get("body"):
            return 400, {"error": {"message": "(#100) text.body is required", "code": 100}}
        wamid = f"wamid.OUT{next(sent)}"
        return 200, {"messaging_product": "whatsapp", "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                     "messages": [{"id": wamid}]}  # fmt: skip

    def upload(request: Request, match: re.Match[str]) -> Answer:
        if not authorised(request):
            return unauthorised()
        if request.form.get("messaging_product") != ["whatsapp"] or "file" not in request.files:
            return 400, {"error": {"message": "(#100) messaging_product and file are required", "code": 100}}
        return 200, {"id": f"media-out-{next(sent)}"}

    def media_url(request: Request, match: re.Match[str]) -> Answer:
        if not authorised(request):
            return unauthorised()
        return 200, {"url": f"{server.url}/download/{match['media']}", "mime_type": "image/png",
                     "sha256": hashlib.sha256(PNG).hexdigest(), "file_size": len(PNG), "id": match["media"],
                     "messaging_product": "whatsapp"}  # fmt: skip

    def download(request: Request, match: re.Match[str]) -> Answer:
        return (200, PNG) if authorised(request) else unauthorised()

    server.route("POST", r"/v[\d.]+/(?P<phone>\d+)/messages", messages)
    server.route("POST", r"/v[\d.]+/(?P<phone>\d+)/media", upload)
    server.route("GET", r"/v[\d.]+/(?P<media>[\w.-]+)", media_url)
    server.route("GET", r"/download/(?P<media>[\w.-]+)", download)
    return server


def whatsapp_body(*messages: dict[str, Any], statuses: tuple[dict[str, Any], ...] = (), name: str = "Kim") -> bytes:
    """A webhook POST body as Meta sends it for the business number."""
    contacts = [{"profile": {"name": name}, "wa_id": m["from"]} for m in messages]
    value = {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550001111",
             "phone_number_id": "100000000000001"}, "contacts": contacts, "messages": list(messages),
             "statuses": list(statuses)}  # fmt: skip
    change = {"value": value, "field": "messages"}
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [change]}]}).encode()


def whatsapp_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --- Telegram Bot API ------------------------------------------------------------------------


def bot_api(token: str) -> LoopbackProvider:
    server = LoopbackProvider()
    counter = iter(range(1, 10_000))

    def method(request: Request, match: re.Match[str]) -> Answer:
        if match["token"] != token:
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        params = request.params
        name = match["method"]
        if name in ("sendMessage", "sendPhoto", "sendDocument"):
            if not params.get("chat_id"):
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: chat_id is empty"}
            if name == "sendMessage" and not params.get("text"):
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}
            if name != "sendMessage" and not request.files:
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: there is no file"}
            chat = {"id": int(params["chat_id"]), "type": "private"}
            return 200, {"ok": True, "result": {"message_id": next(counter), "date": int(time.time()), "chat": chat,
                                                "text": params.get("text", "")}}  # fmt: skip
        if name == "getFile":
            file_id = params.get("file_id", "")
            found = {"file_id": file_id, "file_unique_id": "u" + file_id, "file_size": len(PNG)}
            return 200, {"ok": True, "result": {**found, "file_path": f"photos/{file_id}.png"}}
        if name == "setWebhook":
            return 200, {"ok": True, "result": True, "description": "Webhook was set"}
        return 404, {"ok": False, "error_code": 404, "description": "Not Found"}

    def file(request: Request, match: re.Match[str]) -> Answer:
        return (200, PNG) if match["token"] == token else (401, {"ok": False})

    server.route("POST", r"/bot(?P<token>[^/]+)/(?P<method>\w+)", method)
    server.route("GET", r"/file/bot(?P<token>[^/]+)/(?P<path>.+)", file)
    return server


def telegram_update(update_id: int, text: str = "", chat_id: int = 4242, photo: str = "") -> dict[str, Any]:
    message: dict[str, Any] = {
        "message_id": update_id,
        "date": int(time.time()),
        "chat": {"id": chat_id, "type": "private", "first_name": "Kim"},
        "from": {"id": chat_id, "is_bot": False, "first_name": "Kim", "last_name": "Lee"},
    }
    if text:
        message["text"] = text
    if photo:
        message["photo"] = [{"file_id": photo, "file_unique_id": "u" + photo, "width": 1, "height": 1}]
    return {"update_id": update_id, "message": message}


# --- Twilio REST API -------------------------------------------------------------------------


def twilio_api(account_sid: str, auth_token: str) -> LoopbackProvider:
    server = LoopbackProvider()
    counter = iter(range(1, 10_000))
    expected = "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()

    def messages(request: Request, match: re.Match[str]) -> Answer:
        if request.headers.get("authorization") != expected or match["sid"] != account_sid:
            return 401, {"code": 20003, "message": "Authenticate", "status": 401}
        form = {k: v[0] for k, v in request.form.items()}
        if not form.get("To") or not form.get("From") or not (form.get("Body") or form.get("MediaUrl")):
            return 400, {"code": 21602, "message": "Message body is required.", "status": 400}
        sid = f"SM{next(counter):032d}"
        return 201, {"sid": sid, "account_sid": account_sid, "to": form["To"], "from": form["From"],
                     "body": form.get("Body", ""), "status": "queued", "num_media": "0"}  # fmt: skip

    def recording(request: Request, match: re.Match[str]) -> Answer:
        if request.headers.get("authorization") != expected:
            return 401, {"code": 20003, "message": "Authenticate", "status": 401}
        return 200, b"ID3-fake-mp3-" + match["sid"].encode()

    server.route("POST", r"/2010-04-01/Accounts/(?P<sid>\w+)/Messages.json", messages)
    server.route("GET", r"/2010-04-01/Accounts/\w+/Recordings/(?P<sid>\w+)\.mp3", recording)
    server.route("GET", r"/media/(?P<name>[\w.]+)", lambda request, match: (200, PNG))
    return server


# --- WeChat official-account API -------------------------------------------------------------


def wechat_api(app_id: str, app_secret: str) -> LoopbackProvider:
    server = LoopbackProvider()
    tokens: list[str] = []

    def token(request: Request, match: re.Match[str]) -> Answer:
        q = request.query
        if q.get("grant_type") != "client_credential" or q.get("appid") != app_id or q.get("secret") != app_secret:
            return 200, {"errcode": 40125, "errmsg": "invalid appsecret"}
        tokens.append(f"ACCESS-{len(tokens) + 1}")
        return 200, {"access_token": tokens[-1], "expires_in": 7200}

    def valid(request: Request) -> bool:
        return bool(tokens) and request.query.get("access_token") == tokens[-1]

    def custom_send(request: Request, match: re.Match[str]) -> Answer:
        if not valid(request):
            return 200, {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"}
        body = json.loads(request.body.decode("utf-8"))
        kind = body.get("msgtype")
        if not body.get("touser") or kind not in ("text", "image") or not (body.get(kind) or {}):
            return 200, {"errcode": 44002, "errmsg": "empty post data"}
        return 200, {"errcode": 0, "errmsg": "ok"}

    def upload(request: Request, match: re.Match[str]) -> Answer:
        if not valid(request):
            return 200, {"errcode": 40001, "errmsg": "invalid credential"}
        return 200, {"type": request.query.get("type"), "media_id": "MEDIA-OUT-1", "created_at": int(time.time())}

    def media_get(request: Request, match: re.Match[str]) -> Answer:
        return (200, PNG) if valid(request) else (200, {"errcode": 40001, "errmsg": "invalid credential"})

    server.route("GET", r"/cgi-bin/token", token)
    server.route("POST", r"/cgi-bin/message/custom/send", custom_send)
    server.route("POST", r"/cgi-bin/media/upload", upload)
    server.route("GET", r"/cgi-bin/media/get", media_get)
    return server


def wechat_query(token: str, timestamp: int | None = None, nonce: str = "n0nce") -> dict[str, str]:
    """The signature WeChat puts in the URL of every call: SHA-1 of the sorted token, timestamp, nonce."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = hashlib.sha1("".join(sorted([token, stamp, nonce])).encode()).hexdigest()  # noqa: S324 (WeChat's)
    return {"signature": signature, "timestamp": stamp, "nonce": nonce}


def wechat_xml(content: str, msg_id: int, openid: str = "o-follower-1", kind: str = "text", **extra: str) -> str:
    fields = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in extra.items())
    body = f"<Content><![CDATA[{content}]]></Content>" if kind == "text" else ""
    ident = f"<MsgId>{msg_id}</MsgId>" if msg_id else ""
    return (
        f"<xml><ToUserName><![CDATA[gh_acme]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[{kind}]]></MsgType>{body}{fields}{ident}</xml>"
    )


# --- a company's app behind the API channel --------------------------------------------------


def company_app(secret: str) -> LoopbackProvider:
    """Checks the HMAC on every reply as the app is told to (the README's recipe), and refuses a
    forged or stale one."""
    server = LoopbackProvider()

    def webhook(request: Request, match: re.Match[str]) -> Answer:
        stamp = request.headers.get("x-concierge-timestamp", "")
        given = request.headers.get("x-concierge-signature", "")
        expected = (
            "sha256=" + hmac.new(secret.encode(), stamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
        )
        if not hmac.compare_digest(given, expected) or abs(time.time() - int(stamp or 0)) > 300:
            return 401, {"error": "bad signature"}
        return 200, {"ok": True}

    server.route("POST", r"/concierge", webhook)
    return server
