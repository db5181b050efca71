"""What the fake OpenAI server (tests.fakeopenai) answers, and how it is written on
the wire: the scripted Reply, the chat completion stream and its faults (a slow first
token, a cut connection, a stream of raw lines), OpenAI-style errors, the usage
counts, the deterministic fake embeddings, and the parts of a request body it reads.

Nothing here holds state: tests.fakeopenai's server picks the reply and calls these.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import random
import re
import struct
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

DEFAULT_EMBEDDING_DIMENSIONS = 3072  # text-embedding-3-large

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


def fake_embedding(text: str, dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS) -> list[float]:
    """A deterministic unit vector for `text`, so similarity searches are repeatable."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest(), "big")
    rng = random.Random(seed)
    values = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def completion(model: str, text: str, finish_reason: str, usage: dict[str, int]) -> dict[str, Any]:
    """A whole (not streamed) chat completion."""
    return {
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
        "usage": usage,
    }


def embeddings(body: dict[str, Any], explicit: dict[str, list[float]]) -> dict[str, Any]:
    """The answer to an embeddings request: `explicit` vectors for the texts it holds,
    fake_embedding's for the rest."""
    raw = body["input"]
    # A list of ints is one tokenised input; any other list holds separate inputs.
    inputs = raw if isinstance(raw, list) and not all(isinstance(x, int) for x in raw) else [raw]
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
    return {
        "object": "list",
        "data": data,
        "model": str(body.get("model", "fake-embedding")),
        "usage": {"prompt_tokens": 0, "total_tokens": 0},
    }


def ceiling(deltas: tuple[str, ...], max_tokens: Any) -> tuple[tuple[str, ...], str]:
    """The deltas sent under a request's max_tokens, and the finish reason: "length"
    when they were cut at it, as OpenAI says."""
    if isinstance(max_tokens, int) and 0 < max_tokens < len(deltas):
        return deltas[:max_tokens], "length"
    return deltas, "stop"


async def stream(
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
                return cut(request, resp)
            if sent and reply.tokens_per_second > 0:
                await asyncio.sleep(1 / reply.tokens_per_second)
            # x_sent_at lets a benchmark measure latency from the moment of sending.
            await resp.write(event({"content": delta}, x_sent_at=time.time()))
        if reply.cut_after is not None:
            return cut(request, resp)
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


def cut(request: web.Request, resp: web.StreamResponse | None = None) -> web.StreamResponse:
    """Drop the connection mid-answer, like a crashed upstream or a network fault."""
    # close() flushes what was already written, then the peer sees the body end early.
    if request.transport is not None:
        request.transport.close()
    # aiohttp's write_eof on the closed transport raises ConnectionError, which it ignores.
    return resp if resp is not None else web.StreamResponse()


def error(status: int, message: str) -> web.Response:
    error_type = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "api_error")
    body = {"error": {"message": message, "type": error_type, "param": None, "code": None}}
    if status == 429:
        body["error"]["code"] = "rate_limit_exceeded"
    return web.json_response(body, status=status)


def usage_counts(completion_tokens: int, *, prompt: int = 0) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }


def prompt_tokens(body: dict[str, Any]) -> int:
    """A stand-in count: the words of every message sent, so tests can tell prompts apart."""
    messages = body.get("messages") or []
    texts = [m.get("content") for m in messages if isinstance(m, dict)]
    return sum(len(text.split()) for text in texts if isinstance(text, str))


async def json_body(request: web.Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def last_user_content(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            # Content parts: keep the text ones.
            parts = content if isinstance(content, list) else []
            return "".join(p.get("text", "") for p in parts if isinstance(p, dict))
    return ""
