"""Token usage and cost: recorded per reply as the server reports it, totalled per room."""

from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from chat import rendering, services, usage
from chat.models import Message
from chat.turns import actions
from tests.conftest import replies_finished
from tests.fakeopenai import Reply

PRICES = {
    "test-model": {"prompt": 2.5, "completion": 10},
    "cheap": {"prompt": 0.1, "completion": 0.2},
}


def reply(room, **fields) -> Message:
    return Message.objects.create(room=room, role="assistant", content="answer", **fields)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_reply_records_the_model_and_tokens_the_server_reported(room_factory, model):
    room = await sync_to_async(room_factory)(model="fake-model", temperature=0.4)
    model.queue(Reply(chunks=("one ", "two")))
    await actions.message_send(room_id=room.pk, author=room.owner, content="count these three")
    await replies_finished()
    answer = await Message.objects.aget(room=room, role="assistant")
    assert (answer.model, answer.prompt_tokens, answer.completion_tokens) == ("fake-model", 3, 2)
    (request,) = model.requests
    assert (request["model"], request["temperature"]) == ("fake-model", 0.4)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_reply_uses_the_room_s_model_as_stored_now(room_factory, model):
    room = await sync_to_async(room_factory)(model="fake-model")
    # The owner changed the model after this copy of the room was read (a tab's).
    await sync_to_async(services.room_update)(
        room=await sync_to_async(type(room).objects.get)(pk=room.pk),
        name=room.name,
        system_prompt="",
        model="other-model",
        temperature=1.5,
    )
    await actions.message_send(room_id=room.pk, author=room.owner, content="hi")
    await replies_finished()
    (request,) = model.requests
    assert (request["model"], request["temperature"]) == ("other-model", 1.5)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_usage_stays_unknown_when_the_server_reports_none(room_factory, model):
    room = await sync_to_async(room_factory)()
    model.report_usage = False
    await actions.message_send(room_id=room.pk, author=room.owner, content="hi")
    await replies_finished()
    answer = await Message.objects.aget(room=room, role="assistant")
    assert (answer.status, answer.prompt_tokens, answer.completion_tokens) == (
        "complete",
        None,
        None,
    )
    assert not answer.usage_known


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_regenerating_forgets_the_old_reply_s_usage_until_the_new_one_reports(
    room_factory, model
):
    room = await sync_to_async(room_factory)()
    await actions.message_send(room_id=room.pk, author=room.owner, content="hi")
    await replies_finished()
    model.report_usage = False
    await actions.reply_regenerate(room_id=room.pk, user=room.owner)
    await replies_finished()
    answer = await Message.objects.aget(room=room, role="assistant")
    assert (answer.prompt_tokens, answer.completion_tokens) == (None, None)


def test_price_cost_is_per_million_tokens(settings):
    settings.CHAT_PRICES = PRICES
    cost = usage.price_cost(model="test-model", prompt_tokens=1000, completion_tokens=500)
    assert cost == Decimal("0.0075")
    assert usage.price_cost(model="unpriced", prompt_tokens=1, completion_tokens=1) is None


def test_a_malformed_price_is_no_price(settings):
    settings.CHAT_PRICES = {"m": {"prompt": "cheap"}, "n": 3}
    assert usage.price_cost(model="m", prompt_tokens=1, completion_tokens=1) is None
    assert usage.price_cost(model="n", prompt_tokens=1, completion_tokens=1) is None


@pytest.mark.django_db
def test_room_usage_totals_known_counts_and_counts_the_unknown(room_factory, settings):
    settings.CHAT_PRICES = PRICES
    room = room_factory()
    reply(room, model="test-model", prompt_tokens=1000, completion_tokens=100)
    reply(room, model="cheap", prompt_tokens=10_000, completion_tokens=1000)
    reply(room, model="test-model")  # the server said nothing
    reply(room, model="test-model", status="streaming", prompt_tokens=5, completion_tokens=5)
    total = usage.room_usage(room=room)
    assert (total.replies, total.unknown) == (3, 1)
    assert (total.prompt_tokens, total.completion_tokens, total.total_tokens) == (
        11_000,
        1100,
        12_100,
    )
    # 1000 * 2.5 + 100 * 10 + 10000 * 0.1 + 1000 * 0.2, per million.
    assert total.cost == Decimal("0.0047")


@pytest.mark.django_db
def test_room_cost_is_not_shown_when_a_model_has_no_price(room_factory, settings):
    settings.CHAT_PRICES = PRICES
    room = room_factory()
    reply(room, model="test-model", prompt_tokens=10, completion_tokens=10)
    reply(room, model="unpriced", prompt_tokens=10, completion_tokens=10)
    assert usage.room_usage(room=room).cost is None


@pytest.mark.django_db
def test_the_room_page_shows_each_reply_s_tokens_and_the_room_total(client, room_factory, settings):
    settings.CHAT_PRICES = PRICES
    room = room_factory(model="test-model")
    reply(room, model="test-model", prompt_tokens=1000, completion_tokens=100)
    reply(room, model="test-model")
    html = client.get(room.get_absolute_url()).content.decode()
    assert "test-model · 1100 tokens (1000 prompt, 100 reply) · $0.0035" in html
    assert "Usage unknown" in html
    assert "Room total: 1100 tokens · $0.0035" in html
    assert "1 reply with usage unknown" in html


@pytest.mark.django_db
def test_the_room_total_is_a_fragment_swapped_in_by_id(room_factory):
    room = room_factory()
    reply(room, model="test-model", prompt_tokens=7, completion_tokens=5)
    html = rendering.room_usage_oob(room=room, room_usage=usage.room_usage(room=room)).strip()
    assert html.startswith('<p id="room-usage" class="room-header__usage" hx-swap-oob="true">')
    assert "Room total: 12 tokens" in html
    assert "$" not in html, "no price table, no cost"
    assert "hx-get" not in html, "no tab asks for it"


@pytest.mark.django_db
def test_the_room_header_shows_its_model_and_temperature(client, room_factory):
    room = room_factory(model="fake-model", temperature=0.3)
    html = client.get(room.get_absolute_url()).content.decode()
    assert '<span class="room-header__model-name">fake-model</span> · temperature 0.3' in html


@pytest.mark.django_db
def test_offline_the_header_names_the_demo_model(client, room_factory, settings):
    settings.OPENAI_API_KEY = settings.OPENAI_BASE_URL = ""
    room = room_factory()
    html = client.get(room.get_absolute_url()).content.decode()
    assert '<p class="room-header__model">Offline demo model · temperature 1.0' in html


@pytest.mark.django_db
def test_a_new_conversation_empties_the_room_total_in_every_tab(room_factory):
    room = room_factory()
    html = rendering.room_reset(room=room)
    assert '<p id="room-usage" class="room-header__usage" hx-swap-oob="true"' in html
    assert "Room total" not in html
