"""A scriptable OpenAI-compatible HTTP server for tests and benchmarks.

It runs aiohttp in a background thread with its own event loop, so the code
under test talks to it over real loopback HTTP through the real openai SDK:
in-process async tests and separate server processes (daphne) alike.

    with FakeOpenAI() as server:
        server.queue(Reply("Hello there", tokens_per_second=20))
        ...  # point OPENAI_BASE_URL at server.base_url

What it answers, and how, is tests.fakeopenai_replies: this module holds the
server, its script and what it records.

Run it standalone for benchmarks:

    python -m tests.fakeopenai --port 8001 --rate 50 --text-tokens 400
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import threading
from collections import deque
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from tests.fakeopenai_replies import (
    Reply,
    ceiling,
    completion,
    cut,
    embeddings,
    error,
    fake_embedding,
    json_body,
    last_user_content,
    prompt_tokens,
    stream,
    usage_counts,
)

# The tests and benchmarks import Reply and fake_embedding from here.
__all__ = ["FakeOpenAI", "Reply", "fake_embedding", "main"]

DEFAULT_MODELS = ("fake-model", "fake-embedding")


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
        body = await json_body(request)
        if body is None:
            return error(400, "Request body is not a JSON object")
        with self._received:
            self._requests.append(body)
            if request.transport is not None:
                self._peers.add(request.transport.get_extra_info("peername"))
            self._received.notify_all()
            reply = self._queue.popleft() if self._queue else self._default_reply(body)

        if reply.status != 200:
            return error(reply.status, reply.text or f"Fake error {reply.status}")
        model = str(body.get("model", "fake-model"))
        # Each delta counts as one token: a reply longer than max_tokens ends at it.
        deltas, finish_reason = ceiling(reply.deltas(), body.get("max_tokens"))
        if body.get("stream"):
            asked = bool((body.get("stream_options") or {}).get("include_usage"))
            usage = usage_counts(len(deltas), prompt=prompt_tokens(body))
            return await stream(
                request,
                reply,
                model,
                usage if asked and self.report_usage else None,
                deltas=deltas,
                finish_reason=finish_reason,
            )

        await asyncio.sleep(reply.first_token_delay)
        if reply.cut_after is not None:
            return cut(request)
        text = "".join(deltas) if finish_reason == "length" else reply.text or "".join(deltas)
        usage = usage_counts(len(deltas), prompt=prompt_tokens(body))
        return web.json_response(completion(model, text, finish_reason, usage))

    def _default_reply(self, body: dict[str, Any]) -> Reply:
        if self.default_text is not None:
            return Reply(self.default_text, tokens_per_second=self.default_rate)
        return Reply(f"Echo: {last_user_content(body)}", tokens_per_second=self.default_rate)

    async def _embeddings_endpoint(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        if body is None or "input" not in body:
            return error(400, "Request body must be a JSON object with 'input'")
        with self._lock:
            self._embedding_requests.append(body)
            explicit = dict(self._embeddings)
        await asyncio.sleep(self.embeddings_delay)
        if self.embeddings_status != 200:
            return error(self.embeddings_status, f"Fake error {self.embeddings_status}")
        return web.json_response(embeddings(body, explicit))

    async def _models(self, request: web.Request) -> web.Response:
        if self.models_status != 200:
            return error(self.models_status, f"Fake error {self.models_status}")
        names = self.models
        models = [{"id": n, "object": "model", "created": 0, "owned_by": "fake"} for n in names]
        return web.json_response({"object": "list", "data": models})

    async def _not_found(self, request: web.Request) -> web.Response:
        return error(404, f"Unknown route: {request.method} {request.path}")


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
