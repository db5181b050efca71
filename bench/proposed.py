"""The app with changes docs/benchmark.md proposes, each switched on by name in BENCH_CHANGES.

fastpath  Channels' AsyncConsumer.dispatch runs close_old_connections() in a
          worker thread before every handler, so forwarding one broadcast costs
          a hop into the single thread that also runs every database call. The
          room's broadcasts never touch the database, so they skip it.
client    chat.llm builds an AsyncOpenAI client per reply: ~57 ms of CPU
          (an SSL context, an httpx pool) that blocks every tab of the
          process. Here one client per process stands in for that change.
sse       chat.llm reads the model's stream through the openai SDK, which
          builds pydantic models for every chunk (~80 us) on top of its SSE
          decoding; here one httpx client per process reads the SSE lines and
          json.loads each chunk. (Implies "client".)
freeze    gc.freeze() once the app is loaded: the imported modules' objects
          leave the collector's view, so a full collection stops walking them
          while the rooms wait (200-400 ms pauses on this machine).
"""

import gc
import json
import os
from collections.abc import AsyncIterator, Sequence
from types import SimpleNamespace
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
django_asgi_app = get_asgi_application()

import httpx  # noqa: E402
import openai  # noqa: E402
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import path  # noqa: E402

from chat import llm  # noqa: E402
from chat.consumers import ChatConsumer  # noqa: E402

CHANGES = frozenset(filter(None, os.environ.get("BENCH_CHANGES", "").split(",")))


class FastPathConsumer(ChatConsumer):
    async def dispatch(self, message: dict[str, Any]) -> None:
        if message["type"] == "chat.message":
            await self.chat_message(message)
        else:
            await super().dispatch(message)


class _ProcessClient(openai.AsyncOpenAI):
    """Made once, kept for the process: the close() after each reply keeps it open."""

    async def close(self) -> None:
        pass


_clients: dict[str, openai.AsyncOpenAI] = {}


def _process_client(**options: Any) -> openai.AsyncOpenAI:
    key = repr(sorted(options.items()))
    if key not in _clients:
        _clients[key] = _ProcessClient(**options)
    return _clients[key]


_http: list[httpx.AsyncClient] = []


async def _sse_stream_reply(turns: Sequence[llm.ChatTurn]) -> AsyncIterator[str]:
    """chat.llm.stream_reply's happy path without the SDK; errors end the reply as a ModelError."""
    if not _http:
        _http.append(httpx.AsyncClient(timeout=settings.OPENAI_TIMEOUT))
    body = {"model": settings.OPENAI_MODEL, "messages": list(turns), "stream": True}
    headers = {"Authorization": f"Bearer {settings.OPENAI_API_KEY}"}
    url = f"{settings.OPENAI_BASE_URL.rstrip('/')}/chat/completions"
    try:
        async with _http[0].stream("POST", url, json=body, headers=headers) as response:
            if response.status_code != 200:
                raise llm.ModelError(f"HTTP {response.status_code}")
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                choices = json.loads(line[6:]).get("choices") or [{}]
                if delta := (choices[0].get("delta") or {}).get("content"):
                    yield delta
    except (httpx.HTTPError, ValueError) as exc:
        raise llm.ModelError(str(exc)) from exc


if "sse" in CHANGES:
    # Replies then report no usage, as a server that sends none.
    llm.stream_reply = lambda turns, **options: llm.ModelReply(_sse_stream_reply(turns))
elif "client" in CHANGES:
    # chat.llm calls openai.AsyncOpenAI(...) per reply; its `openai` is this module.
    llm.openai = SimpleNamespace(**{**vars(openai), "AsyncOpenAI": _process_client})

consumer = FastPathConsumer if "fastpath" in CHANGES else ChatConsumer
application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([path("ws/chat/<int:pk>/", consumer.as_asgi())]))
        ),
    }
)

if "freeze" in CHANGES:
    gc.collect()
    gc.freeze()
