"""A streamed reply as the model server sends it: server-sent events of chat
completion chunks, read into text deltas, the server's token counts and why the
reply ended. chat.llm opens the stream and maps its faults; this module knows
only its format, and ModelReply, what callers iterate.
"""

import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Usage:
    """Tokens as the server counted them for one reply."""

    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Finish:
    """Why the server ended a reply: "stop", "length" (the reply ceiling)..."""

    reason: str


class ModelReply:
    """A reply being streamed: iterate it for text deltas; once it has ended,
    `usage` holds the server's token counts, or None when it reported none, and
    `finish_reason` why it ended ("length": cut at the reply ceiling)."""

    def __init__(self, deltas: "AsyncGenerator[str | Usage | Finish]") -> None:
        self._deltas = deltas
        self.usage: Usage | None = None
        self.finish_reason: str | None = None

    def __aiter__(self) -> "ModelReply":
        return self

    async def __anext__(self) -> str:
        while True:
            item = await anext(self._deltas)
            if isinstance(item, Usage):
                self.usage = item
                continue
            if isinstance(item, Finish):
                self.finish_reason = item.reason
                continue
            return item

    async def aclose(self) -> None:
        await self._deltas.aclose()


class StreamBroken(Exception):
    """The stream broke its format, or the server sent an error in it."""


async def stream_items(lines: AsyncIterator[str]) -> AsyncGenerator["str | Usage | Finish"]:
    """The text deltas, token counts and finish reason in a stream's lines. Raises
    StreamBroken when a line breaks the format, the server sends an error in the
    stream, or the stream ends before the reply did."""
    done = ended = False
    async for line in lines:
        # Blank lines end events and ":" lines keep the connection alive. After
        # [DONE] the body is read to its end, so the connection is reused.
        if done or not line.startswith("data:"):
            continue
        if (data := line[5:].strip()) == "[DONE]":
            done = True
            continue
        delta, usage, finish = _chunk_parse(data)
        if delta:
            yield delta
        if usage is not None:
            yield usage
        if finish is not None:
            ended = True
            yield finish
    if not (done or ended):
        raise StreamBroken("the stream ended before the reply did")


def _chunk_parse(data: str) -> tuple[str, Usage | None, Finish | None]:
    """One chunk's text delta, token counts, and finish reason (the reply has ended)."""
    try:
        chunk = json.loads(data)
    except ValueError as exc:
        raise StreamBroken(f"not JSON: {data[:200]!r}") from exc
    if not isinstance(chunk, dict):
        raise StreamBroken(f"not a chunk: {data[:200]!r}")
    if (error := chunk.get("error")) is not None:
        raise StreamBroken(f"the server sent an error: {error!r:.200}")
    delta, usage, finish = "", None, None
    try:
        if choices := chunk.get("choices"):
            choice = choices[0]
            delta = choice.get("delta", {}).get("content") or ""
            if reason := choice.get("finish_reason"):
                finish = Finish(reason=str(reason))
        if counts := chunk.get("usage"):
            usage = Usage(
                prompt_tokens=int(counts["prompt_tokens"]),
                completion_tokens=int(counts["completion_tokens"]),
            )
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
        raise StreamBroken(f"not a chunk: {data[:200]!r}") from exc
    if not isinstance(delta, str):
        raise StreamBroken(f"not a chunk: {data[:200]!r}")
    return delta, usage, finish
