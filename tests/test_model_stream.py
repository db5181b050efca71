"""The stream's format (chat.model_stream), as the real openai SDK receives it
from the tests' server: what is read from it, and what breaks it."""

import json

import pytest

from chat import llm
from chat.model_stream import Usage
from tests.fakeopenai import Reply

pytestmark = pytest.mark.asyncio

TURNS = [{"role": "user", "content": "Hi"}]


async def collect() -> list[str]:
    return [delta async for delta in llm.stream_reply(TURNS)]


def chunk(content: str | None = None, finish_reason: str | None = None, **extra) -> str:
    delta = {} if content is None else {"content": content}
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
    return "data: " + json.dumps({"object": "chat.completion.chunk", "choices": [choice]} | extra)


USAGE = 'data: {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2}}'


async def test_keep_alive_comments_and_other_fields_are_skipped(model):
    model.queue(
        Reply(
            lines=(
                ": PROCESSING",
                "event: message",
                chunk("Hel"),
                "id: 7",
                chunk("lo", usage=None),
                chunk(finish_reason="stop"),
                USAGE,
                "data: [DONE]",
            )
        )
    )
    answer = llm.stream_reply(TURNS)
    assert [delta async for delta in answer] == ["Hel", "lo"]
    assert answer.usage == Usage(prompt_tokens=4, completion_tokens=2)


@pytest.mark.parametrize(
    "bad",
    [
        "data: {not json",
        "data: [1, 2]",
        'data: {"choices": [{"delta": {"content": 5}}]}',
        'data: {"choices": "abc"}',
        'data: {"choices": [], "usage": {"prompt_tokens": 1}}',
    ],
)
async def test_a_malformed_line_cuts_the_reply_off(model, bad):
    model.queue(Reply(lines=(chunk("Hel"), bad, chunk("lo", "stop"), "data: [DONE]")))
    answer = llm.stream_reply(TURNS)
    deltas = []
    with pytest.raises(llm.ModelError, match="cut off") as raised:
        async for delta in answer:
            deltas.append(delta)
    assert deltas == ["Hel"]
    assert raised.value.kind == "cut_off"


async def test_an_error_object_mid_stream_cuts_the_reply_off(model):
    error = {"error": {"message": "overloaded", "type": "server_error"}}
    model.queue(Reply(lines=(chunk("Hel"), "data: " + json.dumps(error), chunk("lo", "stop"))))
    with pytest.raises(llm.ModelError, match="cut off") as raised:
        await collect()
    assert raised.value.kind == "cut_off"


async def test_a_stream_that_ends_before_the_reply_did_is_cut_off(model):
    # The body ends cleanly, but with neither a finish_reason nor [DONE].
    model.queue(Reply(lines=(chunk("Hel"), chunk("lo"))))
    with pytest.raises(llm.ModelError, match="cut off"):
        await collect()


async def test_a_finish_reason_without_done_ends_the_reply(model):
    model.queue(Reply(lines=(chunk("Hel"), chunk("lo", "stop"))))
    assert await collect() == ["Hel", "lo"]
