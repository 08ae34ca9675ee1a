"""A local, scripted server speaking the OpenAI chat-completions API, for tests.

``FakeLLMServer`` runs the standard library's HTTP server in a thread on 127.0.0.1 (a free
port) and answers ``POST /v1/chat/completions`` with the next scripted ``Reply``: an answer
with ``usage`` token counts, an HTTP error (429, 500, ...) or a reply slower than the
client's timeout. It records every request body it received, so a test can read the exact
prompt a client sent. Nothing leaves the machine.

    with FakeLLMServer([Reply("IDEA: ...\\n<<<<<<< SEARCH ...")]) as server:
        litellm.completion(model="openai/gpt-4o-mini", api_base=server.url, api_key="test", ...)
        server.requests[0]["messages"]
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Sequence


@dataclasses.dataclass(frozen=True)
class Reply:
    """One scripted answer.

    Attributes:
      content: the assistant message text (for status 200).
      status: the HTTP status; anything but 200 sends an OpenAI-style error body.
      delay_s: seconds to wait before answering (to exceed a client's timeout).
      prompt_tokens / completion_tokens: the ``usage`` reported; None counts characters / 4.
      headers: extra response headers (e.g. ``{"retry-after": "0"}``).
    """

    content: str = ""
    status: int = 200
    delay_s: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    headers: tuple[tuple[str, str], ...] = ()


class FakeLLMServer:
    """Serves ``replies`` in order, one per request; when they run out it answers 400 with
    "no scripted reply left" so a test that asks too often fails loudly."""

    def __init__(self, replies: Sequence[Reply] = ()):
        self._replies = list(replies)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.requests: list[dict[str, Any]] = []
        self.request_times: list[float] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        """The ``api_base`` for clients: ``http://127.0.0.1:PORT/v1``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def add(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    def _next(self, body: dict[str, Any]) -> Reply | None:
        with self._lock:
            self.requests.append(body)
            self.request_times.append(time.monotonic())
            return self._replies.pop(0) if self._replies else None

    def __enter__(self) -> "FakeLLMServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._stopping.set()  # wakes handlers still sleeping on a slow reply
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, payload: dict[str, Any], headers=()) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for k, v in headers:
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): nothing to answer

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, _error(f"unknown path {self.path}", "not_found"))
                    return
                reply = server._next(body)
                if reply is None:
                    self._send(400, _error("no scripted reply left", "invalid_request_error"))
                    return
                if reply.delay_s and server._stopping.wait(reply.delay_s):
                    return
                if reply.status != 200:
                    self._send(reply.status, _error(f"scripted status {reply.status}", _ERROR_TYPES.get(reply.status, "server_error")),
                               reply.headers)
                    return
                prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
                pt = reply.prompt_tokens if reply.prompt_tokens is not None else max(1, prompt_chars // 4)
                ct = reply.completion_tokens if reply.completion_tokens is not None else max(1, len(reply.content) // 4)
                self._send(200, {
                    "id": f"chatcmpl-{len(server.requests)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "unknown"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": reply.content}}],
                    "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
                }, reply.headers)

        return Handler


_ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_api_key", 404: "not_found",
                429: "rate_limit_exceeded", 500: "server_error", 503: "service_unavailable"}


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": kind, "param": None}}
