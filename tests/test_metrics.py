"""/metrics: who may read it, and the figures a room's sockets and replies move."""

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from prometheus_client import REGISTRY

from tests.conftest import replies_finished
from tests.fakeopenai import Reply
from tests.wsutil import receive_until, reply_finished, send

OUTSIDE = "203.0.113.7"
TOKEN = "s3cret-metrics-token"


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_loopback_reads_the_metrics_without_logging_in():
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    body = response.content.decode()
    for name in (
        "chat_open_websockets",
        "chat_replies_streaming",
        "chat_questions_queued",
        "chat_frames_sent_total",
        "chat_reply_first_token_seconds_bucket",
        "chat_reply_duration_seconds_bucket",
    ):
        assert f"\n{name}" in body, name


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer", "Bearer s3cret-metrics-tökén"],
)
def test_anyone_else_without_the_token_gets_a_404(settings, authorization):
    settings.CHAT_METRICS_TOKEN = TOKEN
    headers = {"Authorization": authorization} if authorization else {}
    response = Client(REMOTE_ADDR=OUTSIDE, headers=headers).get("/metrics")
    assert response.status_code == 404


def test_no_token_configured_means_loopback_only(settings):
    settings.CHAT_METRICS_TOKEN = ""
    response = Client(REMOTE_ADDR=OUTSIDE, headers={"Authorization": "Bearer "}).get("/metrics")
    assert response.status_code == 404


def test_the_token_opens_it_from_elsewhere(settings):
    settings.CHAT_METRICS_TOKEN = TOKEN
    client = Client(REMOTE_ADDR=OUTSIDE, headers={"Authorization": f"Bearer {TOKEN}"})
    assert client.get("/metrics").status_code == 200


def test_a_malformed_client_address_is_not_loopback():
    assert Client(REMOTE_ADDR="not-an-address").get("/metrics").status_code == 404


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_sockets_frames_and_a_reply_move_their_figures(room_factory, connect, model):
    room = await sync_to_async(room_factory)()
    sockets, frames = value("chat_open_websockets"), value("chat_frames_sent_total")
    complete = value("chat_replies_total", outcome="complete")
    first_tokens = value("chat_reply_first_token_seconds_count")
    durations = value("chat_reply_duration_seconds_count")
    model.queue(Reply("one two three", tokens_per_second=30))

    tab = await connect(f"/ws/chat/{room.pk}/")
    assert value("chat_open_websockets") == sockets + 1
    await tab.send_to(text_data=send("count this"))
    received = await receive_until(tab, reply_finished)
    await replies_finished()

    # The composer, the question, the updates and the final reply: each one frame.
    assert value("chat_frames_sent_total") - frames >= len(received)
    assert value("chat_replies_total", outcome="complete") == complete + 1
    assert value("chat_reply_first_token_seconds_count") == first_tokens + 1
    assert value("chat_reply_duration_seconds_count") == durations + 1
    assert value("chat_replies_streaming") == 0
    await tab.disconnect()
    assert value("chat_open_websockets") == sockets


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_model_fault_counts_by_kind_and_the_reply_as_an_error(room_factory, connect, model):
    room = await sync_to_async(room_factory)()
    errors = value("chat_model_errors_total", kind="http_status")
    failed = value("chat_replies_total", outcome="error")
    model.queue(Reply(status=500))

    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=send("fail please"))
    await receive_until(tab, reply_finished)
    await replies_finished()

    assert value("chat_model_errors_total", kind="http_status") == errors + 1
    assert value("chat_replies_total", outcome="error") == failed + 1
    # No first token came.
    assert value("chat_replies_streaming") == 0


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_tokens_are_counted_by_model_and_kind_as_the_server_reports_them(
    room_factory, connect, model
):
    room = await sync_to_async(room_factory)()
    prompt = value("chat_tokens_total", model="test-model", kind="prompt")
    completion = value("chat_tokens_total", model="test-model", kind="completion")
    model.queue(Reply("one two three four"))

    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=send("count these words"))
    await receive_until(tab, reply_finished)
    await replies_finished()

    # The tests' server reports the words sent and the chunks it streamed.
    assert value("chat_tokens_total", model="test-model", kind="prompt") == prompt + 3
    assert value("chat_tokens_total", model="test-model", kind="completion") == completion + 4
    body = Client().get("/metrics").content.decode()
    assert 'chat_tokens_total{kind="prompt",model="test-model"}' in body
