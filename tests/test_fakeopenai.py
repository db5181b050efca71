"""The fake OpenAI server (tests.fakeopenai), exercised through the real openai SDK:
its queue of scripted replies and its default echo, what it records and waits for,
its models and unknown routes, and the command line the benchmarks run.
tests/test_fakeopenai_replies.py covers what it answers.
"""

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.fakeopenai import FakeOpenAI, Reply, fake_embedding

USER_TURN = [{"role": "user", "content": "Hi there"}]


def client(server: FakeOpenAI, **kwargs: float) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0, **kwargs)


async def collect(server: FakeOpenAI, **kwargs: float) -> list[str]:
    """Stream one reply and return its content deltas (the role chunk's "" excluded)."""
    async with client(server, **kwargs) as api:
        stream = await api.chat.completions.create(
            model="gpt-test", messages=USER_TURN, stream=True
        )
        deltas: list[str] = []
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                deltas.append(chunk.choices[0].delta.content)
        return deltas


@pytest.mark.asyncio
async def test_request_bodies_are_recorded(server: FakeOpenAI) -> None:
    messages = [{"role": "system", "content": "Be brief."}, *USER_TURN]
    async with client(server) as api:
        stream = await api.chat.completions.create(model="gpt-test", messages=messages, stream=True)
        async for _ in stream:
            pass
    [body] = server.requests
    assert body["messages"] == messages
    assert body["model"] == "gpt-test"
    assert body["stream"] is True
    assert server.wait_for_requests(1, timeout=0) == [body]


@pytest.mark.asyncio
async def test_queue_is_consumed_in_order_then_echoes(server: FakeOpenAI) -> None:
    server.queue(Reply("first"), Reply("second"))
    assert await collect(server) == ["first"]
    assert await collect(server) == ["second"]
    assert await collect(server) == ["Echo: ", "Hi ", "there"]
    server.default_text = "fixed reply"
    assert await collect(server) == ["fixed ", "reply"]
    assert len(server.requests) == 4


def test_reset_drops_queued_replies_and_requests(server: FakeOpenAI) -> None:
    server.queue(Reply("stale"))
    httpx.post(f"{server.base_url}/chat/completions", json={"model": "m", "messages": []})
    assert len(server.requests) == 1
    server.reset()
    assert server.requests == []
    response = httpx.post(
        f"{server.base_url}/chat/completions", json={"model": "m", "messages": USER_TURN}
    )
    assert response.json()["choices"][0]["message"]["content"] == "Echo: Hi there"


@pytest.mark.asyncio
async def test_default_rate_paces_echo_replies(server: FakeOpenAI) -> None:
    server.default_rate = 20
    started = time.monotonic()
    assert await collect(server) == ["Echo: ", "Hi ", "there"]
    assert time.monotonic() - started >= 0.09  # two gaps of 50 ms


def test_wait_for_requests_blocks_until_they_arrive(server: FakeOpenAI) -> None:
    with pytest.raises(TimeoutError):
        server.wait_for_requests(1, timeout=0.05)
    payload = {"model": "m", "messages": USER_TURN}
    url = f"{server.base_url}/chat/completions"
    sender = threading.Timer(0.1, lambda: httpx.post(url, json=payload))
    sender.start()
    try:
        assert server.wait_for_requests(1, timeout=5) == [payload]
    finally:
        sender.join()


@pytest.mark.asyncio
async def test_set_embedding_overrides_one_exact_text(server: FakeOpenAI) -> None:
    server.set_embedding("cat", [1.0, 0.0, 0.0])
    async with client(server) as api:
        result = await api.embeddings.create(
            model="emb", input=["cat", "cat "], encoding_format="float"
        )
    assert result.data[0].embedding == [1.0, 0.0, 0.0]
    assert result.data[1].embedding == fake_embedding("cat ")


@pytest.mark.asyncio
async def test_models_and_unknown_routes(server: FakeOpenAI) -> None:
    async with client(server) as api:
        models = await api.models.list()
        with pytest.raises(openai.NotFoundError) as caught:
            await api.files.list()
    assert [m.id for m in models.data] == ["fake-model", "fake-embedding"]
    assert caught.value.status_code == 404
    assert caught.value.body["type"] == "not_found_error"


def test_cli_serves_fixed_paced_replies_until_sigterm() -> None:
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakeopenai",
            "--port",
            "0",
            "--rate",
            "200",
            "--text-tokens",
            "5",
        ],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        response = httpx.post(
            f"{base_url}/chat/completions",
            json={"model": "m", "messages": USER_TURN},
            timeout=5,
        )
        assert response.json()["choices"][0]["message"]["content"] == "tok0 tok1 tok2 tok3 tok4"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
