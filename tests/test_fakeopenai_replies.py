"""What the fake OpenAI server answers (tests.fakeopenai_replies), exercised through the
real openai SDK: the stream and its chunks, whole completions, errors, cut and slow
replies, pacing, and embeddings.

These tests also pin down which exception the SDK raises for each fault,
since code under test has to catch exactly those.
"""

import math
import time

import httpx
import openai
import pytest

from tests.fakeopenai import FakeOpenAI
from tests.fakeopenai_replies import Reply, fake_embedding
from tests.test_fakeopenai import USER_TURN, client, collect


@pytest.mark.asyncio
async def test_stream_sends_openai_chunks_with_send_times(server: FakeOpenAI) -> None:
    server.queue(Reply("The quick  brown fox\njumps."))
    before = time.time()
    async with client(server) as api:
        stream = await api.chat.completions.create(
            model="gpt-test", messages=USER_TURN, stream=True
        )
        chunks = [chunk async for chunk in stream]
    after = time.time()

    first, *content, last = chunks
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].delta.content == ""
    assert [c.choices[0].delta.content for c in content] == [
        "The ",
        "quick  ",
        "brown ",
        "fox\n",
        "jumps.",
    ]
    assert all(c.choices[0].finish_reason is None for c in [first, *content])
    assert last.choices[0].finish_reason == "stop"
    assert last.choices[0].delta.content is None
    assert {c.id for c in chunks} == {first.id} and first.id.startswith("chatcmpl-")
    assert {c.model for c in chunks} == {"gpt-test"}
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    # openai 2.x models keep unknown fields in model_extra.
    sent_at = [c.model_extra["x_sent_at"] for c in content]
    assert all(isinstance(t, float) and before <= t <= after for t in sent_at)
    assert sent_at == sorted(sent_at)
    assert first.model_extra == {} and last.model_extra == {}


@pytest.mark.asyncio
async def test_explicit_chunks_are_sent_verbatim(server: FakeOpenAI) -> None:
    server.queue(Reply(chunks=("Hel", "lo", ", wor", "ld")))
    assert await collect(server) == ["Hel", "lo", ", wor", "ld"]


@pytest.mark.asyncio
async def test_stream_is_plain_sse_ending_in_done(server: FakeOpenAI) -> None:
    server.queue(Reply("a b"))
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{server.base_url}/chat/completions",
            json={"model": "m", "messages": USER_TURN, "stream": True},
        )
    assert response.headers["content-type"].startswith("text/event-stream")
    events = response.text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    assert len(events) == 1 + 2 + 1 + 2  # role, two deltas, finish, [DONE], trailing ""
    assert all(e.startswith("data: {") for e in events[:-2])


@pytest.mark.asyncio
async def test_usage_chunk_when_requested(server: FakeOpenAI) -> None:
    server.queue(Reply("one two three"))
    async with client(server) as api:
        stream = await api.chat.completions.create(
            model="m",
            messages=USER_TURN,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


@pytest.mark.asyncio
async def test_non_streaming_completion(server: FakeOpenAI) -> None:
    server.queue(Reply("Whole answer at once."))
    async with client(server) as api:
        completion = await api.chat.completions.create(model="gpt-test", messages=USER_TURN)
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-test"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "Whole answer at once."
    assert completion.choices[0].finish_reason == "stop"
    assert "stream" not in server.requests[0]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, openai.BadRequestError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
async def test_error_status_raises_from_create(
    server: FakeOpenAI, status: int, error: type[openai.APIStatusError]
) -> None:
    server.queue(Reply("Scripted failure", status=status))
    async with client(server) as api:
        with pytest.raises(error) as caught:
            await api.chat.completions.create(model="m", messages=USER_TURN, stream=True)
    assert caught.value.status_code == status
    assert isinstance(caught.value.body, dict) and caught.value.body["message"] == (
        "Scripted failure"
    )


@pytest.mark.asyncio
async def test_cut_stream_raises_raw_httpx_error_after_n_deltas(server: FakeOpenAI) -> None:
    server.queue(Reply("one two three four five", cut_after=2))
    received: list[str] = []
    finish_reasons: list[str | None] = []
    async with client(server) as api:
        stream = await api.chat.completions.create(model="m", messages=USER_TURN, stream=True)
        # The SDK does not wrap errors raised while iterating: this is not an openai.APIError.
        with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
            async for chunk in stream:
                finish_reasons.append(chunk.choices[0].finish_reason)
                if chunk.choices[0].delta.content:
                    received.append(chunk.choices[0].delta.content)
    assert received == ["one ", "two "]
    assert finish_reasons == [None, None, None]


@pytest.mark.asyncio
async def test_cut_non_streaming_request_is_a_connection_error(server: FakeOpenAI) -> None:
    server.queue(Reply("never sent", cut_after=0))
    async with client(server) as api:
        with pytest.raises(openai.APIConnectionError) as caught:
            await api.chat.completions.create(model="m", messages=USER_TURN)
    assert type(caught.value) is openai.APIConnectionError  # not the APITimeoutError subclass


@pytest.mark.asyncio
async def test_slow_first_token_times_out_mid_stream_as_raw_httpx(server: FakeOpenAI) -> None:
    server.queue(Reply("late", first_token_delay=1.0))
    async with client(server, timeout=0.3) as api:
        # Headers arrive at once, so create() succeeds; the read timeout hits the iteration.
        stream = await api.chat.completions.create(model="m", messages=USER_TURN, stream=True)
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            async for _ in stream:
                pass
    assert 0.25 <= time.monotonic() - started < 0.9


@pytest.mark.asyncio
async def test_slow_non_streaming_reply_is_api_timeout_error(server: FakeOpenAI) -> None:
    server.queue(Reply("late", first_token_delay=1.0))
    async with client(server, timeout=0.3) as api:
        with pytest.raises(openai.APITimeoutError):
            await api.chat.completions.create(model="m", messages=USER_TURN)


@pytest.mark.asyncio
async def test_first_token_delay_within_timeout_still_streams(server: FakeOpenAI) -> None:
    server.queue(Reply("worth the wait", first_token_delay=0.2))
    started = time.monotonic()
    assert await collect(server, timeout=2) == ["worth ", "the ", "wait"]
    assert time.monotonic() - started >= 0.2


@pytest.mark.asyncio
async def test_tokens_per_second_paces_the_stream(server: FakeOpenAI) -> None:
    server.queue(Reply(" ".join(f"t{i}" for i in range(10)), tokens_per_second=50))
    started = time.monotonic()
    deltas = await collect(server)
    assert len(deltas) == 10
    assert time.monotonic() - started >= 0.15  # nine gaps of 20 ms


@pytest.mark.asyncio
async def test_embeddings_are_deterministic_unit_vectors(server: FakeOpenAI) -> None:
    async with client(server) as api:
        first = await api.embeddings.create(model="emb", input=["apple", "pear"])
        again = await api.embeddings.create(model="emb", input="apple")
        floats = await api.embeddings.create(model="emb", input="apple", encoding_format="float")
    apple, pear = (item.embedding for item in first.data)
    assert [item.index for item in first.data] == [0, 1]
    assert len(apple) == len(pear) == 3072
    assert math.isclose(math.fsum(v * v for v in apple), 1.0, rel_tol=1e-5)
    assert math.isclose(math.fsum(v * v for v in pear), 1.0, rel_tol=1e-5)
    assert again.data[0].embedding == apple
    assert apple != pear
    # The SDK asks for base64 (float32) by default; "float" returns the exact values.
    assert floats.data[0].embedding == fake_embedding("apple")
    assert apple == pytest.approx(floats.data[0].embedding, abs=1e-6)
    assert first.model == "emb" and first.object == "list"
    assert [r["input"] for r in server.embedding_requests] == [["apple", "pear"], "apple", "apple"]


@pytest.mark.asyncio
async def test_embeddings_honour_dimensions(server: FakeOpenAI) -> None:
    async with client(server) as api:
        small = await api.embeddings.create(model="emb", input="apple", dimensions=8)
    vector = small.data[0].embedding
    assert len(vector) == 8
    assert math.isclose(math.fsum(v * v for v in vector), 1.0, rel_tol=1e-5)
    assert server.embedding_requests[0]["dimensions"] == 8
