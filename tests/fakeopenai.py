"""A scriptable OpenAI-compatible HTTP server for tests and benchmarks.

It runs aiohttp in a background thread with its own event loop, so the code
under test talks to it over real loopback HTTP through the real openai SDK:
in-process async tests and separate server processes (daphne) alike.

    with FakeOpenAI() as server:
        server.queue(Reply("Hello there", tokens_per_second=20))
        ...  # point OPENAI_BASE_URL at server.base_url

Run it standalone for benchmarks:

    python -m tests.fakeopenai --port 8001 --rate 50 --text-tokens 400
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import math
import random
import re
import signal
import struct
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiohttp import web

DEFAULT_EMBEDDING_DIMENSIONS = 3072  # text-embedding-3-large
DEFAULT_MODELS = ("fake-model", "fake-embedding")

# OpenAI's error "type" for the statuses tests are likely to script.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


@dataclass(frozen=True)
class Reply:
    """One scripted answer to a chat completion request."""

    text: str = ""
    # Explicit deltas; by default the text is split into word-sized pieces.
    chunks: tuple[str, ...] | None = None
    # 0 streams as fast as possible; otherwise sleep 1/rate between chunks.
    tokens_per_second: float = 0.0
    # Non-200 answers with an OpenAI-style JSON error (text is its message).
    status: int = 200
    # Seconds between sending the headers and the first chunk.
    first_token_delay: float = 0.0
    # Close the connection after this many content chunks: no finish_reason, no [DONE].
    cut_after: int | None = None
    # Stream exactly these SSE lines (a blank line after each), then end the body
    # cleanly: malformed or unusual streams.
    lines: tuple[str, ...] | None = None

    def deltas(self) -> tuple[str, ...]:
        if self.chunks is not None:
            return self.chunks
        # Whitespace stays attached to the words, so "".join(deltas) == text.
        return tuple(re.findall(r"\s*\S+\s*", self.text)) or ((self.text,) if self.text else ())


class FakeOpenAI:
    """An OpenAI-compatible server on loopback; see the module docstring."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        # Used when the queue is empty: a fixed text, else an echo of the last user message.
        self.default_text: str | None = None
        self.default_rate: float = 0.0
        # What GET /v1/models lists, and its status (non-200 answers with an error).
        self.models: tuple[str, ...] = DEFAULT_MODELS
        self.models_status: int = 200
        # Whether streams send the usage chunk a client asks for.
        self.report_usage: bool = True
        # /v1/embeddings: its status (non-200 answers with an error) and a delay before it.
        self.embeddings_status: int = 200
        self.embeddings_delay: float = 0.0
        self._lock = threading.Lock()
        self._received = threading.Condition(self._lock)
        self._queue: deque[Reply] = deque()
        self._requests: list[dict[str, Any]] = []
        self._peers: set[Any] = set()
        self._embedding_requests: list[dict[str, Any]] = []
        self._embeddings: dict[str, list[float]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        """Start serving in a daemon thread; returns once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("FakeOpenAI is already running")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="FakeOpenAI", daemon=True)
        thread.start()
        try:
            # Binding errors (port in use) surface here, in the caller's thread.
            asyncio.run_coroutine_threadsafe(self._serve(), loop).result(timeout=10)
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()
            raise
        self._loop, self._thread = loop, thread
        return self

    def stop(self) -> None:
        """Close open streams and the listening socket, then end the thread."""
        if self._thread is None or self._loop is None or self._runner is None:
            return
        loop = self._loop
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=10)
        loop.close()
        self._thread = self._loop = self._runner = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # -- scripting and inspection (any thread) -----------------------------

    def queue(self, *replies: Reply) -> None:
        """Script replies, consumed in order by successive chat requests."""
        with self._lock:
            self._queue.extend(replies)

    def set_embedding(self, text: str, vector: list[float]) -> None:
        """Answer embedding requests for exactly `text` with `vector`."""
        with self._lock:
            self._embeddings[text] = list(vector)

    def reset(self) -> None:
        """Forget queued replies, explicit embeddings and recorded requests; list the
        default models and report usage again."""
        with self._lock:
            self.models, self.models_status, self.report_usage = DEFAULT_MODELS, 200, True
            self.embeddings_status, self.embeddings_delay = 200, 0.0
            self._queue.clear()
            self._requests.clear()
            self._peers.clear()
            self._embedding_requests.clear()
            self._embeddings.clear()

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Bodies received on /v1/chat/completions, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def connections(self) -> int:
        """How many client connections (by address) chat requests came on."""
        with self._lock:
            return len(self._peers)

    @property
    def embedding_requests(self) -> list[dict[str, Any]]:
        """Bodies received on /v1/embeddings, oldest first (a copy)."""
        with self._lock:
            return list(self._embedding_requests)

    def wait_for_requests(self, n: int, timeout: float = 10) -> list[dict[str, Any]]:
        """Block until at least `n` chat requests arrived; raise TimeoutError otherwise.

        It blocks the calling thread: from a coroutine, use asyncio.to_thread.
        """
        with self._received:
            if not self._received.wait_for(lambda: len(self._requests) >= n, timeout):
                raise TimeoutError(f"got {len(self._requests)} chat requests, wanted {n}")
            return list(self._requests)

    # -- server (runs on the background loop) ------------------------------

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings_endpoint)
        app.router.add_get("/v1/models", self._models)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        # A short shutdown_timeout so stop() does not wait on a slow stream.
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=0.25
        )
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.host, self.port).start()
        except BaseException:
            await self._runner.cleanup()
            self._runner = None
            raise
        self.port = self._runner.addresses[0][1]

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        if body is None:
            return _error(400, "Request body is not a JSON object")
        with self._received:
            self._requests.append(body)
            if request.transport is not None:
                self._peers.add(request.transport.get_extra_info("peername"))
            self._received.notify_all()
            reply = self._queue.popleft() if self._queue else self._default_reply(body)

        if reply.status != 200:
            return _error(reply.status, reply.text or f"Fake error {reply.status}")
        model = str(body.get("model", "fake-model"))
        # Each delta counts as one token: a reply longer than max_tokens ends at it.
        deltas, finish_reason = _ceiling(reply.deltas(), body.get("max_tokens"))
        if body.get("stream"):
            asked = bool((body.get("stream_options") or {}).get("include_usage"))
            usage = _usage(len(deltas), prompt=_prompt_tokens(body))
            return await _stream(
                request,
                reply,
                model,
                usage if asked and self.report_usage else None,
                deltas=deltas,
                finish_reason=finish_reason,
            )

        await asyncio.sleep(reply.first_token_delay)
        if reply.cut_after is not None:
            return _cut(request)
        text = "".join(deltas) if finish_reason == "length" else reply.text or "".join(deltas)
        return web.json_response(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": _usage(len(deltas), prompt=_prompt_tokens(body)),
            }
        )

    def _default_reply(self, body: dict[str, Any]) -> Reply:
        if self.default_text is not None:
            return Reply(self.default_text, tokens_per_second=self.default_rate)
        return Reply(f"Echo: {_last_user_content(body)}", tokens_per_second=self.default_rate)

    async def _embeddings_endpoint(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        if body is None or "input" not in body:
            return _error(400, "Request body must be a JSON object with 'input'")
        with self._lock:
            self._embedding_requests.append(body)
            explicit = dict(self._embeddings)
        await asyncio.sleep(self.embeddings_delay)
        if self.embeddings_status != 200:
            return _error(self.embeddings_status, f"Fake error {self.embeddings_status}")
        raw = body["input"]
        # A list of ints is one tokenised input; any other list holds separate inputs.
        if isinstance(raw, list) and not all(isinstance(x, int) for x in raw):
            inputs = raw
        else:
            inputs = [raw]
        texts = [x if isinstance(x, str) else json.dumps(x) for x in inputs]
        dimensions = int(body.get("dimensions") or DEFAULT_EMBEDDING_DIMENSIONS)
        as_base64 = body.get("encoding_format") == "base64"  # the SDK's default
        data = []
        for index, text in enumerate(texts):
            vector = explicit.get(text) or fake_embedding(text, dimensions)
            encoded: Any = vector
            if as_base64:
                packed = struct.pack(f"<{len(vector)}f", *vector)
                encoded = base64.b64encode(packed).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": str(body.get("model", "fake-embedding")),
                "usage": {"prompt_tokens": 0, "total_tokens": 0},
            }
        )

    async def _models(self, request: web.Request) -> web.Response:
        if self.models_status != 200:
            return _error(self.models_status, f"Fake error {self.models_status}")
        names = self.models
        models = [{"id": n, "object": "model", "created": 0, "owned_by": "fake"} for n in names]
        return web.json_response({"object": "list", "data": models})

    async def _not_found(self, request: web.Request) -> web.Response:
        return _error(404, f"Unknown route: {request.method} {request.path}")


def fake_embedding(text: str, dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS) -> list[float]:
    """A deterministic unit vector for `text`, so similarity searches are repeatable."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest(), "big")
    rng = random.Random(seed)
    values = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def _ceiling(deltas: tuple[str, ...], max_tokens: Any) -> tuple[tuple[str, ...], str]:
    """The deltas sent under a request's max_tokens, and the finish reason: "length"
    when they were cut at it, as OpenAI says."""
    if isinstance(max_tokens, int) and 0 < max_tokens < len(deltas):
        return deltas[:max_tokens], "length"
    return deltas, "stop"


async def _stream(
    request: web.Request,
    reply: Reply,
    model: str,
    usage: dict[str, int] | None,
    *,
    deltas: tuple[str, ...],
    finish_reason: str,
) -> web.StreamResponse:
    """Send `reply` as OpenAI-style SSE, flushing each chunk as it is written."""
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())

    def event(delta: dict[str, str], finish_reason: str | None = None, **extra: Any) -> bytes:
        chunk = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            **extra,
        }
        return f"data: {json.dumps(chunk)}\n\n".encode()

    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    # StreamResponse sends the headers now, so the client's create() returns
    # before the first token, as it does against OpenAI.
    await resp.prepare(request)
    if reply.lines is not None:
        for line in reply.lines:
            await resp.write(f"{line}\n\n".encode())
        await resp.write_eof()
        return resp
    try:
        await asyncio.sleep(reply.first_token_delay)
        await resp.write(event({"role": "assistant", "content": ""}))
        for sent, delta in enumerate(deltas):
            if reply.cut_after is not None and sent >= reply.cut_after:
                return _cut(request, resp)
            if sent and reply.tokens_per_second > 0:
                await asyncio.sleep(1 / reply.tokens_per_second)
            # x_sent_at lets a benchmark measure latency from the moment of sending.
            await resp.write(event({"content": delta}, x_sent_at=time.time()))
        if reply.cut_after is not None:
            return _cut(request, resp)
        await resp.write(event({}, finish_reason))
        if usage is not None:
            usage_chunk = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage,
            }
            await resp.write(f"data: {json.dumps(usage_chunk)}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
    except ConnectionError:
        pass  # the client went away mid-stream; nothing left to tell it
    return resp


def _cut(request: web.Request, resp: web.StreamResponse | None = None) -> web.StreamResponse:
    """Drop the connection mid-answer, like a crashed upstream or a network fault."""
    # close() flushes what was already written, then the peer sees the body end early.
    if request.transport is not None:
        request.transport.close()
    # aiohttp's write_eof on the closed transport raises ConnectionError, which it ignores.
    return resp if resp is not None else web.StreamResponse()


def _error(status: int, message: str) -> web.Response:
    error_type = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "api_error")
    body = {"error": {"message": message, "type": error_type, "param": None, "code": None}}
    if status == 429:
        body["error"]["code"] = "rate_limit_exceeded"
    return web.json_response(body, status=status)


def _usage(completion_tokens: int, *, prompt: int = 0) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }


def _prompt_tokens(body: dict[str, Any]) -> int:
    """A stand-in count: the words of every message sent, so tests can tell prompts apart."""
    messages = body.get("messages") or []
    texts = [m.get("content") for m in messages if isinstance(m, dict)]
    return sum(len(text.split()) for text in texts if isinstance(text, str))


async def _json_body(request: web.Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _last_user_content(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            # Content parts: keep the text ones.
            parts = content if isinstance(content, list) else []
            return "".join(p.get("text", "") for p in parts if isinstance(p, dict))
    return ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the fake OpenAI server in the foreground.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--rate", type=float, default=0.0, help="tokens/s, 0 = unthrottled")
    parser.add_argument("--text-tokens", type=int, default=0, help="0 = echo the user message")
    args = parser.parse_args(argv)

    server = FakeOpenAI(args.host, args.port)
    server.default_rate = args.rate
    if args.text_tokens > 0:
        server.default_text = " ".join(f"tok{i}" for i in range(args.text_tokens))
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    with server:
        print(server.base_url, flush=True)
        stopping.wait()


if __name__ == "__main__":
    main()
