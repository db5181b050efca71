"""The model module, through the real openai SDK against the tests' server."""

import pytest

from chat import llm
from tests.fakeopenai import Reply
from tests.servers import free_port

pytestmark = pytest.mark.asyncio

TURNS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


async def collect(turns=TURNS) -> list[str]:
    return [delta async for delta in llm.stream_reply(turns)]


async def test_streams_deltas_and_sends_the_conversation(model):
    model.queue(Reply(chunks=("Hel", "lo", " there")))
    assert await collect() == ["Hel", "lo", " there"]
    (request,) = model.requests
    assert request["model"] == "test-model"
    assert request["stream"] is True
    assert request["messages"] == TURNS


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply("boom", status=500), "The model server answered with an error (HTTP 500)."),
        (Reply("slow down", status=429), "The model is rate-limited; try again shortly."),
        (Reply("a b c d", cut_after=2), "The model's reply was cut off."),
    ],
)
async def test_model_faults_become_model_errors(model, reply, message):
    model.queue(reply)
    with pytest.raises(llm.ModelError) as raised:
        await collect()
    assert str(raised.value) == message


async def test_a_model_that_never_sends_a_token_times_out(model, settings):
    settings.OPENAI_TIMEOUT = 0.3
    model.queue(Reply("late", first_token_delay=2))
    with pytest.raises(llm.ModelError, match="did not answer in time"):
        await collect()


async def test_an_unreachable_server_is_reported(settings):
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(llm.ModelError, match="Could not reach the model server"):
        await collect()


async def test_without_key_or_server_the_demo_model_answers_offline(settings):
    settings.OPENAI_API_KEY = settings.OPENAI_BASE_URL = ""
    assert not llm.is_configured()
    assert llm.model_name() == llm.DEMO_MODEL_NAME
    first = "".join(await collect([{"role": "user", "content": "안녕하세요"}]))
    again = "".join(await collect([{"role": "user", "content": "안녕하세요"}]))
    assert first == again
    assert first.startswith("**Offline demo model.**")
    assert "“안녕하세요”" in first and "OPENAI_API_KEY" in first


async def test_a_base_url_alone_selects_a_local_server(model, settings):
    settings.OPENAI_API_KEY = ""
    assert llm.is_configured()
    model.queue(Reply("from a local server"))
    assert "".join(await collect()) == "from a local server"
