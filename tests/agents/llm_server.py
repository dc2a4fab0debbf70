"""An OpenAI-compatible chat-completions server on loopback: the one outside service the LLM
tests stand in for. It answers whole (JSON) or streamed (server-sent events), as OpenAI
documents, and keeps the requests it got."""

import json
import time
from http.server import BaseHTTPRequestHandler

from tests.support import send_body


class FakeChatCompletions(BaseHTTPRequestHandler):
    """The chat-completions API as OpenAI documents it, whole (JSON) or streamed (server-sent
    events, one ``chat.completion.chunk`` per word, ``data: [DONE]`` last)."""

    delay = 0.0  # before answering
    chunk_delay = 0.0  # between streamed words
    answer = "Refunds take 2 business days (generated)."
    requests: list[dict] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeChatCompletions.requests.append(body)
        time.sleep(self.delay)
        if body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            words = self.answer.split(" ")
            for index, word in enumerate(words):
                piece = word if index == 0 else " " + word
                chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                         "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}  # fmt: skip
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                time.sleep(self.chunk_delay)
            self.wfile.write(b"data: [DONE]\n\n")
            return
        reply = {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": self.answer},
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        send_body(self, json.dumps(reply).encode(), "application/json")

    def log_message(self, *args):
        pass
