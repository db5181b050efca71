"""The model: an async iterator of text deltas (with the reply's token usage once
it ends), the server's list of models, and embeddings for document search.
The only module that imports openai: it opens the requests and maps their faults
to ModelError; chat.model_stream reads what a streamed reply is made of.

With OPENAI_API_KEY or OPENAI_BASE_URL set, replies come from that
OpenAI-compatible server (OpenAI, Ollama, vLLM, llama.cpp's server...).
With neither, an offline demo model streams a fixed, clearly labelled reply,
so a fresh checkout shows the whole flow.
"""

import asyncio
import contextlib
import logging
import re
import weakref
from collections.abc import AsyncGenerator, Sequence
from typing import Any, cast

import httpx
import openai

# The client imports its API resources (~1 s) on first use, which would stall every
# tab of the process at its first reply: loaded with the app instead.
import openai.resources.chat
from django.conf import settings
from django.core.cache import cache
from django.utils.translation import gettext_noop
from openai.types.chat import ChatCompletionMessageParam

from chat.demo import DEMO_MODEL_NAME, demo_reply
from chat.model_stream import Finish, ModelReply, StreamBroken, Usage, stream_items

logger = logging.getLogger(__name__)

ChatTurn = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": ...}


class ModelError(Exception):
    """The model failed; the message is safe to show in the room.

    Messages are English: a reply saves its error, and the page translates it
    for each reader when it renders (chat_tags.reply_error).
    `kind` names the fault for the model-errors metric.
    """

    def __init__(self, message: str, *, kind: str = "other") -> None:
        super().__init__(message)
        self.kind = kind


# The one reply error with a value in it; reply_error translates it by this pattern.
HTTP_STATUS_ERROR = gettext_noop("The model server answered with an error (HTTP %(status)s).")


def model_name(*, model: str | None = None) -> str:
    """The model that answers: `model` (a room's), else OPENAI_MODEL; offline, the demo."""
    return (model or settings.OPENAI_MODEL) if is_configured() else DEMO_MODEL_NAME


def is_configured() -> bool:
    return bool(settings.OPENAI_API_KEY or settings.OPENAI_BASE_URL)


def stream_reply(
    turns: Sequence[ChatTurn],
    *,
    model: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
) -> ModelReply:
    """The reply to `turns` (by OPENAI_MODEL and the server's default temperature unless
    given, at most `max_tokens` long, else CHAT_MAX_REPLY_TOKENS), as text deltas;
    iterating raises ModelError on any fault."""
    if not is_configured():
        return ModelReply(demo_reply(turns))
    return ModelReply(
        _server_reply(
            turns,
            model=model,
            temperature=temperature,
            max_tokens=max_tokens or settings.CHAT_MAX_REPLY_TOKENS,
        )
    )


async def _server_reply(
    turns: Sequence[ChatTurn], *, model: str | None, temperature: float | None, max_tokens: int
) -> AsyncGenerator[str | Usage | Finish]:
    client = _async_client()
    # Unset, the server's own default temperature.
    options: dict[str, Any] = {} if temperature is None else {"temperature": temperature}
    try:
        # The raw response: the SDK's client, base URL and status errors, without
        # its per-chunk model objects (a fifth of a streaming process's time).
        async with (
            client.chat.completions.with_streaming_response.create(
                model=model or settings.OPENAI_MODEL,
                # Our turns are plain dicts of the SDK's message shape.
                messages=cast(list[ChatCompletionMessageParam], list(turns)),
                stream=True,
                # The reply ceiling: a reply cut by it ends with finish_reason "length".
                max_tokens=max_tokens,
                # The last chunk then carries the token counts.
                stream_options={"include_usage": True},
                **options,
            ) as response,
            contextlib.aclosing(stream_items(response.iter_lines())) as items,
        ):
            # Leaving the block, also when the reply is stopped, closes the
            # response: the server stops generating.
            async for item in items:
                yield item
    # Faults after the stream has started come from httpx, not the SDK.
    except (openai.APITimeoutError, httpx.TimeoutException) as exc:
        raise ModelError(gettext_noop("The model did not answer in time."), kind="timeout") from exc
    except openai.APIConnectionError as exc:
        raise ModelError(
            gettext_noop("Could not reach the model server."), kind="connection"
        ) from exc
    except openai.RateLimitError as exc:
        raise ModelError(
            gettext_noop("The model is rate-limited; try again shortly."), kind="rate_limited"
        ) from exc
    except openai.APIStatusError as exc:
        raise ModelError(
            HTTP_STATUS_ERROR % {"status": exc.status_code}, kind="http_status"
        ) from exc
    except (openai.APIError, httpx.TransportError, StreamBroken) as exc:
        # A connection cut mid-stream, a malformed stream, or an error sent in it.
        logger.warning("model stream failed: %r", exc)
        raise ModelError(gettext_noop("The model's reply was cut off."), kind="cut_off") from exc


def models_list() -> list[str]:
    """The chat models the server offers (GET /v1/models), sorted; empty when there
    is no server or it cannot say. Kept for CHAT_MODELS_CACHE seconds, failures too,
    so a down server slows one form, not every one."""
    if not is_configured():
        return []
    key = "chat:models:" + (settings.OPENAI_BASE_URL or "openai")
    names = cache.get(key)
    if names is None:
        names = _models_fetch()
        cache.set(key, names, settings.CHAT_MODELS_CACHE)
    return names


def _models_fetch() -> list[str]:
    options = _client_options() | {"timeout": min(settings.OPENAI_TIMEOUT, 5.0)}
    try:
        with openai.OpenAI(**options) as client:
            names = {model.id for model in client.models.list()}
    except (openai.APIError, httpx.HTTPError) as exc:
        logger.warning("listing the models failed: %r", exc)
        return []
    return sorted(name for name in names if not _NOT_CHAT.search(name))


# Servers list every model they have; these cannot hold a conversation.
_NOT_CHAT = re.compile(r"embed|whisper|tts|dall-e|moderation|transcribe|image", re.IGNORECASE)


def _no_embeddings() -> ModelError:
    # The demo model has no embeddings; callers fall back to keyword search.
    return ModelError(gettext_noop("No embedding model is configured."))


async def embed(texts: Sequence[str], *, model: str) -> list[list[float]]:
    """Embed `texts` on the configured server, raising ModelError on any fault."""
    if not is_configured():
        raise _no_embeddings()
    client = _async_client()
    try:
        response = await client.embeddings.create(
            model=model, input=list(texts), encoding_format="float"
        )
    except (openai.APIError, httpx.HTTPError) as exc:
        raise _embedding_error(exc) from exc
    return [item.embedding for item in sorted(response.data, key=lambda item: item.index)]


def embed_sync(texts: Sequence[str], *, model: str) -> list[list[float]]:
    """embed() for synchronous callers: saving a document outside an event loop."""
    if not is_configured():
        raise _no_embeddings()
    with openai.OpenAI(**_client_options()) as client:
        try:
            response = client.embeddings.create(
                model=model, input=list(texts), encoding_format="float"
            )
        except (openai.APIError, httpx.HTTPError) as exc:
            raise _embedding_error(exc) from exc
    return [item.embedding for item in sorted(response.data, key=lambda item: item.index)]


# Clients cost ~57 ms of CPU each to build (an SSL context, a connection pool),
# blocking every tab of the process meanwhile (docs/benchmark.md): one is kept
# per event loop and configuration.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, openai.AsyncOpenAI]] = (
    weakref.WeakKeyDictionary()
)


def _async_client() -> openai.AsyncOpenAI:
    options = _client_options()
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    key = tuple(sorted(options.items()))
    if key not in per_loop:
        per_loop[key] = openai.AsyncOpenAI(**options)
    return per_loop[key]


def _client_options() -> dict[str, Any]:
    return {
        # Local servers (Ollama, vLLM) take any key, but the SDK requires one.
        "api_key": settings.OPENAI_API_KEY or "not-needed",
        "base_url": settings.OPENAI_BASE_URL or None,
        "timeout": settings.OPENAI_TIMEOUT,
        # A failed reply is shown with a Retry action, and a search falls back to
        # keywords: silent retries would only make people wait longer.
        "max_retries": 0,
    }


def _embedding_error(exc: Exception) -> ModelError:
    logger.warning("embedding request failed: %r", exc)
    return ModelError(gettext_noop("The embedding request failed."), kind="embedding")
