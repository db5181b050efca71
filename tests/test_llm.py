"""The model module, through the real openai SDK against the tests' server."""

import pytest

from chat import llm
from chat.model_stream import Usage
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


async def test_a_room_s_model_and_temperature_are_sent(model):
    answer = llm.stream_reply(TURNS, model="fake-model", temperature=0.3)
    assert "".join([delta async for delta in answer]) == "Echo: Hi"
    (request,) = model.requests
    assert (request["model"], request["temperature"]) == ("fake-model", 0.3)
    assert request["stream_options"] == {"include_usage": True}


async def test_usage_is_what_the_server_reported(model):
    model.queue(Reply(chunks=("a", "b", "c")))
    answer = llm.stream_reply(TURNS)
    assert [delta async for delta in answer] == ["a", "b", "c"]
    # The fake server counts the prompt's words (3) and the reply's chunks (3).
    assert answer.usage == Usage(prompt_tokens=3, completion_tokens=3)


async def test_usage_is_unknown_when_the_server_reports_none(model):
    model.report_usage = False
    answer = llm.stream_reply(TURNS)
    assert "".join([delta async for delta in answer]) == "Echo: Hi"
    assert answer.usage is None


async def test_the_demo_model_reports_no_usage(settings):
    settings.OPENAI_API_KEY = settings.OPENAI_BASE_URL = ""
    answer = llm.stream_reply(TURNS, model="gpt-4o", temperature=2)
    assert "".join([delta async for delta in answer]).startswith("**Offline demo model.**")
    assert answer.usage is None
    assert llm.model_name(model="gpt-4o") == llm.DEMO_MODEL_NAME


async def test_a_connection_cut_mid_stream_is_cut_off(model):
    model.queue(Reply("a b c d", cut_after=2))
    deltas = []
    with pytest.raises(llm.ModelError, match="cut off") as raised:
        async for delta in llm.stream_reply(TURNS):
            deltas.append(delta)
    assert deltas == ["a ", "b "]
    assert raised.value.kind == "cut_off"


async def test_one_connection_carries_successive_replies(model):
    # The body is read past [DONE] to its end, so the pooled connection is reused.
    model.queue(Reply("one"), Reply("two"))
    assert await collect() == ["one"]
    assert await collect() == ["two"]
    assert model.connections == 1


async def test_the_reply_ceiling_is_sent_and_a_reply_cut_by_it_says_so(model, settings):
    settings.CHAT_MAX_REPLY_TOKENS = 4096
    whole = llm.stream_reply(TURNS)
    assert "".join([delta async for delta in whole]) == "Echo: Hi"
    assert whole.finish_reason == "stop"
    model.queue(Reply(chunks=("a", "b", "c", "d")))
    cut = llm.stream_reply(TURNS, max_tokens=2)
    assert [delta async for delta in cut] == ["a", "b"]
    assert cut.finish_reason == "length"
    assert [request["max_tokens"] for request in model.requests] == [4096, 2]
