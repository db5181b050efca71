"""Catch me up: what the model is asked, where the recap goes, and when it is not asked."""

import json
import re
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone
from prometheus_client import REGISTRY

from chat import budgets, recaps
from chat.budget_models import Charge, day_start
from chat.models import Message, RoomRead
from tests.fakeopenai import Reply
from tests.wsutil import action, receive_until


@pytest.fixture
def bob(user_factory):
    return user_factory("bob")


@pytest.fixture
def room(room_factory, bob):
    room = room_factory(name="Plans")
    room.members.add(bob)
    return room


def away(room, user, *, minutes: int = 10) -> None:
    """The user last opened the room `minutes` ago; what came since is new to them."""
    then = timezone.now() - timedelta(minutes=minutes)
    RoomRead.objects.create(room=room, user=user, read_at=then, since=then)


def recap_done(frame: str) -> bool:
    return 'id="recap"' in frame and 'aria-busy="false"' in frame


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_recap_streams_to_the_asker_alone_and_is_not_saved(
    room, user, bob, connect, model, message_factory
):
    await sync_to_async(away)(room, bob)
    make = sync_to_async(message_factory)
    first = await make(room, "Shall we meet on Friday?", author=user)
    await make(room, "Friday works for the venue.", role=Message.Role.ASSISTANT)
    model.queue(
        Reply("- alice asks to meet on Friday [1]; the AI agrees [2]", tokens_per_second=50)
    )
    bob_tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)
    alice_tab = await connect(f"/ws/chat/{room.pk}/")

    await bob_tab.send_to(text_data=action("catch_up"))
    frames = await receive_until(bob_tab, recap_done)

    assert len(frames) > 2, "the recap should stream in several updates"
    link = f'href="/chat/{room.pk}/?message={first.pk}#message-{first.pk}"'
    assert link in frames[-1] and "alice asks to meet on Friday" in frames[-1]
    assert await alice_tab.receive_nothing(timeout=0.5)
    [request] = model.requests
    asked = request["messages"][-1]["content"]
    assert '[1] "alice": Shall we meet on Friday?' in asked
    assert '[2] "AI": Friday works for the venue.' in asked
    assert await Message.objects.filter(room=room).acount() == 2


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_nothing_unread_says_so_without_calling_the_model(room, bob, connect, model):
    await sync_to_async(away)(room, bob)
    tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)
    await tab.send_to(text_data=action("catch_up"))
    frame = await tab.receive_from()
    assert "Nothing new since you last read this room." in frame
    assert model.requests == []


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_recap_counts_toward_the_rate_limit(
    room, user, bob, connect, model, message_factory, settings
):
    settings.CHAT_RATE_LIMIT = 0
    await sync_to_async(away)(room, bob)
    await sync_to_async(message_factory)(room, "news", author=user)
    tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)
    await tab.send_to(text_data=action("catch_up"))
    assert "You are sending messages too fast." in await tab.receive_from()
    assert model.requests == []


@pytest.mark.django_db
def test_citations_become_links_and_others_stay_text(room, user, message_factory):
    shown = [message_factory(room, f"m{i}", author=user) for i in range(2)]
    missed = recaps.Missed(room=room, messages=shown)
    html = recaps.recap_html(missed=missed, text="one [2], none [3], a [link](https://x.test)")
    url = f"/chat/{room.pk}/?message={shown[1].pk}#message-{shown[1].pk}"
    assert re.search(f'<a href="{re.escape(url)}"[^>]*>\\[2\\]</a>', html)
    assert "none [3]" in html


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_recap_past_the_askers_budget_is_refused_without_calling_the_model(
    room, user, bob, connect, model, message_factory, settings
):
    settings.CHAT_USER_TOKENS_PER_DAY = 10
    await sync_to_async(away)(room, bob)
    await sync_to_async(message_factory)(room, "news", author=user)
    tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)
    await tab.send_to(text_data=action("catch_up"))
    frame = await tab.receive_from()
    assert "The AI cannot answer: your daily token budget has 10 tokens left" in frame
    assert 'id="recap"' not in frame
    assert model.requests == []
    assert not await Charge.objects.aexists()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_recap_is_charged_to_its_asker_and_the_room_as_the_server_counted_it(
    room, user, bob, connect, model, message_factory
):
    room.max_reply_tokens = 64
    await room.asave(update_fields=["max_reply_tokens"])
    await sync_to_async(away)(room, bob)
    await sync_to_async(message_factory)(room, "Shall we meet on Friday?", author=user)
    recap = Reply("- alice asks to meet on Friday [1]")
    model.queue(recap)
    counted = REGISTRY.get_sample_value(
        "chat_tokens_total", {"model": "test-model", "kind": "completion"}
    )
    tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)

    await tab.send_to(text_data=action("catch_up"))
    await receive_until(tab, recap_done)

    [request] = model.requests
    assert request["max_tokens"] == 64, "the room's reply ceiling"
    # The fake server counts a prompt's words, and a reply's chunks.
    prompt = sum(len(turn["content"].split()) for turn in request["messages"])
    completion = len(recap.deltas())
    charge = await Charge.objects.aget()
    assert (charge.user_id, charge.room_id, charge.kind, charge.reply_id) == (
        bob.pk,
        room.pk,
        Charge.Kind.RECAP,
        None,
    )
    assert (charge.tokens, charge.settled, charge.estimated) == (prompt + completion, True, False)
    today = day_start(timezone.now())
    spent = await sync_to_async(budgets.tokens_spent)(
        charges=Charge.objects.filter(user=bob), since=today
    )
    assert spent == prompt + completion
    now_counted = REGISTRY.get_sample_value(
        "chat_tokens_total", {"model": "test-model", "kind": "completion"}
    )
    assert now_counted == (counted or 0) + completion


@pytest.mark.django_db
@pytest.mark.parametrize("limited_by", ["settings", "room"])
def test_the_request_keeps_the_newest_messages_that_fit(
    room, user, message_factory, settings, limited_by
):
    if limited_by == "settings":
        settings.CHAT_CONTEXT_TOKENS, settings.CHAT_MAX_REPLY_TOKENS = 300, 100
    else:
        settings.CHAT_CONTEXT_TOKENS, settings.CHAT_MAX_REPLY_TOKENS = 128_000, 4096
        room.context_tokens, room.max_reply_tokens = 300, 100
    shown = [message_factory(room, f"message {i} " + "word " * 40, author=user) for i in range(5)]
    turns = recaps.recap_turns(missed=recaps.Missed(room=room, messages=shown), language="ko")
    assert "Korean" in turns[0]["content"]
    lines = turns[1]["content"].splitlines()
    assert 0 < len(lines) < 5
    assert lines[-1].startswith(f"[5] {json.dumps('alice')}: message 4")
