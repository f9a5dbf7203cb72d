"""A real local HTTP server speaking OpenAI chat completions, scriptable per test.

Each request gets the next scripted ``Reply`` whose ``match`` occurs in the chunk text, or else the
default responder's answer. Every request is recorded with its arrival time, and the server tracks
how many requests were in flight at once.

Connections are kept alive (HTTP/1.1), as a real endpoint's are, and a reply's delay runs from the
request's arrival: the server's own parsing is part of the delay, not added to it, so 32 requests
arriving together are all answered ``delay`` seconds later.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["FakeOpenAI", "RecordedRequest", "Reply", "capitalised_people", "tokens", "usage"]

_CAPITALISED = re.compile(r"\b[A-Z][a-z]+(?: [A-Z][a-z]+)*\b")
# A word, a run of digits or one other non-space character is one token: close enough to a
# real tokenizer's counts (about 0.75 words per token on English) for cost reports to be real.
_TOKEN = re.compile(r"[A-Za-z]+|\d+|[^\sA-Za-z\d]")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it."""

    path: str
    headers: Mapping[str, str]
    body: Any
    received_at: float

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The chat messages sent."""
        return list(self.body.get("messages", [])) if isinstance(self.body, dict) else []

    @property
    def chunk_text(self) -> str:
        """The chunk: the ``text`` of the first user message's JSON, else that message itself."""
        content = next((m["content"] for m in self.messages if m.get("role") == "user"), "")
        try:
            data = json.loads(content)
        except ValueError:
            return str(content)
        return str(data.get("text", content)) if isinstance(data, dict) else str(content)


@dataclass(frozen=True)
class Reply:
    """A scripted answer; ``content=None`` means the default responder's content."""

    status: int = 200
    content: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    body: str | None = None
    match: str = ""

    @classmethod
    def answer(cls, data: object, **options: Any) -> Reply:
        """A 200 whose assistant content is ``data`` as JSON."""
        return cls(content=json.dumps(data), **options)

    @classmethod
    def garbage(cls, text: str = "Sure! The people are Alice and Bob.", **options: Any) -> Reply:
        """A 200 whose assistant content is not the requested JSON."""
        return cls(content=text, **options)

    @classmethod
    def error(cls, status: int, retry_after: str | None = None, **options: Any) -> Reply:
        """An HTTP error, with a ``Retry-After`` header if given."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return cls(status=status, headers=headers, **options)

    @classmethod
    def hang(cls, seconds: float, **options: Any) -> Reply:
        """The default answer, but only after ``seconds`` (or when the server stops)."""
        return cls(delay=seconds, **options)


def capitalised_people(request: RecordedRequest) -> str:
    """A deterministic extraction: every run of capitalised words is a Person."""
    seen: dict[str, int] = {}
    mentions = []
    for found in _CAPITALISED.finditer(request.chunk_text):
        text = found.group()
        seen[text] = seen.get(text, 0) + 1
        mentions.append({"text": text, "type": "Person", "occurrence": seen[text]})
    return json.dumps({"mentions": mentions, "relations": []})


class FakeOpenAI:
    """``POST /v1/chat/completions`` on a free local port, in a background thread.

    Use as a context manager; leaving it stops the server and wakes any reply still delayed.
    """

    def __init__(
        self,
        responder: Callable[[RecordedRequest], str] = capitalised_people,
        *,
        default_delay: float = 0.0,
        host: str = "127.0.0.1",
    ) -> None:
        """Configure the default answer (used when no scripted reply matches), its delay, and
        the address to listen on (``0.0.0.0`` for clients in other network namespaces)."""
        self.responder = responder
        self.default_delay = default_delay
        self.max_in_flight = 0
        self._requests: list[RecordedRequest] = []
        self._script: list[Reply] = []
        self._in_flight = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _Server(self, host)
        # A short poll interval lets leaving the context manager stop the server promptly.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        """What ``llm_base_url`` should be set to."""
        return self.url_for(str(self._server.server_address[0]).replace("0.0.0.0", "127.0.0.1"))

    def url_for(self, host: str) -> str:
        """The base URL as a client reaching this machine at ``host`` uses it."""
        return f"http://{host}:{self._server.server_address[1]}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request to the chat-completions route so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def forget(self) -> None:
        """Clear the record of requests, so that a test counts only the calls from here on."""
        with self._lock:
            self._requests.clear()

    def script(self, *replies: Reply) -> None:
        """Queue replies; each is used once, by the first request whose chunk contains its match."""
        with self._lock:
            self._script.extend(replies)

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.drop_idle_connections()
        self._server.server_close()
        self._thread.join()

    @contextmanager
    def _serving(self, request: RecordedRequest) -> Iterator[Reply]:
        with self._lock:
            self._requests.append(request)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            reply = self._next_reply(request.chunk_text)
        try:
            yield reply
        finally:
            with self._lock:
                self._in_flight -= 1

    def _next_reply(self, chunk_text: str) -> Reply:
        for index, reply in enumerate(self._script):
            if reply.match in chunk_text:
                return self._script.pop(index)
        return Reply(delay=self.default_delay)

    def respond(self, request: RecordedRequest) -> tuple[Reply, str]:
        """Record a request, build the HTTP body to send, and wait out the reply's delay.

        The body is built before the wait: requests arriving together are answered together,
        and work left for after the delay would make the last of them late.
        """
        with self._serving(request) as reply:
            body = self._body(reply, request)
            self._stopping.wait(max(0.0, reply.delay - (time.monotonic() - request.received_at)))
            return reply, body

    def _body(self, reply: Reply, request: RecordedRequest) -> str:
        if reply.body is not None:
            return reply.body
        if reply.status != 200:
            return json.dumps({"error": {"message": f"scripted {reply.status}"}})
        content = self.responder(request) if reply.content is None else reply.content
        return json.dumps(_completion(content, request))


class _Server(ThreadingHTTPServer):
    # Non-daemon handler threads, so closing the server waits for them: it stops cleanly.
    daemon_threads = False
    # socketserver's default backlog of 5 resets connections when a client opens dozens at once.
    request_queue_size = 128

    def __init__(self, fake: FakeOpenAI, host: str) -> None:
        super().__init__((host, 0), _Handler)
        self.fake = fake
        self._idle: set[socket.socket] = set()
        self._idle_lock = threading.Lock()

    def idle(self, connection: socket.socket, waiting: bool) -> None:
        """Track connections waiting for their next request (kept alive between requests)."""
        with self._idle_lock:
            (self._idle.add if waiting else self._idle.discard)(connection)

    def drop_idle_connections(self) -> None:
        """Wake handlers blocked on a kept-alive connection, so closing needs no read timeout."""
        with self._idle_lock:
            for connection in self._idle:
                with suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive: no new connection (and thread) per request
    # Headers and body go out in two writes; on a kept-alive connection Nagle's algorithm would
    # hold the body back until the client's delayed ACK, 40 ms later.
    disable_nagle_algorithm = True
    timeout = 5
    arrived = 0.0

    def handle_one_request(self) -> None:
        self.server.idle(self.connection, True)
        try:
            super().handle_one_request()
        finally:
            self.server.idle(self.connection, False)

    def parse_request(self) -> bool:
        # Called as soon as the request line is in: the arrival that a reply's delay counts from.
        self.arrived = time.monotonic()
        self.server.idle(self.connection, False)
        return super().parse_request()

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        request = RecordedRequest(
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=_json_or_text(raw),
            received_at=self.arrived,
        )
        if self.path != "/v1/chat/completions":
            self._send(404, {}, json.dumps({"error": {"message": f"no route {self.path}"}}))
            return
        reply, body = self.server.fake.respond(request)
        self._send(reply.status, reply.headers, body)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _send(self, status: int, headers: Mapping[str, str], body: str) -> None:
        data = body.encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            # The client gave up (timeout) or the server is stopping: nothing left to tell it.
            self.close_connection = True


def _completion(content: str, request: RecordedRequest) -> dict[str, Any]:
    model = request.body.get("model", "fake") if isinstance(request.body, dict) else "fake"
    return {
        "id": f"chatcmpl-fake-{int(request.received_at * 1e6)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "finish_reason": "stop",
            }
        ],
        "usage": usage(request, content),
    }


def tokens(text: str) -> int:
    """Tokens the fake counts in ``text`` (see ``_TOKEN``)."""
    return len(_TOKEN.findall(text))


def usage(request: RecordedRequest, content: str) -> dict[str, int]:
    """The ``usage`` of a completion: every message's tokens in, the answer's tokens out."""
    prompt = sum(tokens(str(m.get("content", ""))) + 4 for m in request.messages)
    completion = tokens(content)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")
