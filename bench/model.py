"""The tests' OpenAI-compatible server, streaming one reply (bench.replies) and timing
every chunk."""

import asyncio
import json
import re
import time

from aiohttp import web

from tests.fakeopenai import FakeOpenAI
from tests.fakeopenai_replies import last_user_content

# In a shared room the model sees each question after its author's name
# (chat.selectors.turn_author_split; this process runs without Django).
_AUTHOR_LINE = re.compile(r'\A\[author: "(?:[^"\\\n]|\\.)*"\]\n')


def _sse(payload: object) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def _chunk(delta: dict[str, str], finish_reason: str | None = None) -> bytes:
    return _sse(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "bench",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }
    )


class RecordingModel(FakeOpenAI):
    """Answers every chat request with the same reply at a fixed chunk rate.

    `sent[user message][i]` is when chunk i went out (epoch seconds). Each room
    asks with its own text, so the client side can match tokens to send times.
    Chunks follow an absolute schedule, so sleep overshoot does not lower the rate.
    """

    def __init__(self, *, chunks: tuple[str, ...], rate: float) -> None:
        super().__init__()
        self.chunks, self.rate = chunks, rate
        self.sent: dict[str, list[float]] = {}

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        question = _AUTHOR_LINE.sub("", last_user_content(await request.json()))
        times = self.sent.setdefault(question, [])
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(_chunk({"role": "assistant", "content": ""}))
        start = time.monotonic()
        for index, chunk in enumerate(self.chunks):
            await asyncio.sleep(max(0.0, start + index / self.rate - time.monotonic()))
            times.append(time.time())
            await response.write(_chunk({"content": chunk}))
        await response.write(_chunk({}, "stop"))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response
