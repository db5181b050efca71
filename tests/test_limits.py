"""The reply ceiling and the context window, against the tests' model server."""

import json
import statistics
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from chat import budgets, limits, llm, selectors
from chat.broadcast import room_version_bump
from chat.models import Message, Room
from chat.tokens import tokens_estimate, tokens_estimate_messages
from tests.fakeopenai import Reply
from tests.wsutil import action, messages_in, receive_until, reply_finished, send

LENGTH_NOTE = "This reply reached the length limit: Continue carries it on."
DIVIDER = "Earlier messages are not sent to the AI"


def turn(role: str, content: str) -> llm.ChatTurn:
    return {"role": role, "content": content}


def history(n: int) -> list[llm.ChatTurn]:
    return [turn("system", "Be brief.")] + [
        turn("user" if i % 2 == 0 else "assistant", f"message {i}: " + "word " * 20)
        for i in range(n)
    ]


# -- the ceiling and the window ----------------------------------------------


def test_a_room_may_lower_the_ceiling_and_window_never_raise_them(settings):
    settings.CHAT_MAX_REPLY_TOKENS, settings.CHAT_CONTEXT_TOKENS = 4096, 128_000
    assert limits.limits_reply_ceiling(room=Room()) == 4096
    assert limits.limits_reply_ceiling(room=Room(max_reply_tokens=500)) == 500
    assert limits.limits_context_window(room=Room(context_tokens=8000)) == 8000
    # The operator lowered the settings since the room chose.
    settings.CHAT_MAX_REPLY_TOKENS, settings.CHAT_CONTEXT_TOKENS = 300, 4000
    room = Room(max_reply_tokens=500, context_tokens=8000)
    assert limits.limits_reply_ceiling(room=room) == 300
    assert limits.limits_prompt_budget(room=room) == 4000 - 300


def test_the_oldest_messages_are_left_out_first_keeping_the_prompt_and_the_question():
    turns = history(50)
    budget = 400
    fitted = limits.context_fit(turns=turns, budget=budget)
    assert tokens_estimate_messages(messages=fitted) <= budget
    assert fitted[0] == turns[0], "the system prompt stays"
    assert fitted[-1] == turns[-1], "the newest question stays"
    # What is sent is the newest part of the conversation, whole.
    assert fitted[1:] == turns[len(turns) - len(fitted) + 1 :]
    # And as much of it as fits: one more message would not.
    dropped = turns[len(turns) - len(fitted)]
    assert tokens_estimate_messages(messages=[*fitted, dropped]) > budget


def test_everything_is_sent_when_it_fits():
    turns = history(6)
    assert limits.context_fit(turns=turns, budget=10_000) == turns


def test_a_prompt_and_question_too_long_for_the_window_fail_clearly():
    turns = [turn("system", "rule " * 500), turn("user", "question")]
    with pytest.raises(llm.ModelError) as raised:
        limits.context_fit(turns=turns, budget=100)
    assert raised.value.kind == "context"
    assert str(raised.value) == limits.PROMPT_TOO_LONG


def test_carrying_a_reply_on_keeps_its_text_and_the_instruction():
    turns = [*history(20), turn("assistant", "partial " * 30), turn("user", "go on")]
    fitted = limits.context_fit(turns=turns, budget=200, keep=2)
    assert fitted[-2:] == turns[-2:] and fitted[0] == turns[0]


# -- the estimate's error ----------------------------------------------------

COUNTS = json.loads((Path(__file__).parent / "token_counts.json").read_text())


def test_the_estimate_errs_high_by_about_a_third_against_openais_encodings():
    """The README's figure: never below the real count; 1.3x in the median."""
    texts = [case for case in COUNTS["texts"] if case["o200k_base"] > 10]
    ratios = [tokens_estimate(text=case["text"]) / case["o200k_base"] for case in texts]
    assert min(ratios) >= 1.0
    assert 1.2 <= statistics.median(ratios) <= 1.4
    assert max(ratios) <= 1.7


# -- against the model server ------------------------------------------------


@sync_to_async
def a_long_room(room_factory, *, messages: int, **fields) -> tuple[Room, list[Message]]:
    room = room_factory(
        name="Long", system_prompt="You are the room's careful assistant.", **fields
    )
    rows = Message.objects.bulk_create(
        Message(
            room=room,
            role=Message.Role.USER if i % 2 == 0 else Message.Role.ASSISTANT,
            content=f"message {i}: " + "the quick brown fox jumps over the lazy dog " * 3,
        )
        for i in range(messages)
    )
    return room, rows


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_every_request_carries_the_ceiling(room_factory, connect, model, settings):
    settings.CHAT_MAX_REPLY_TOKENS = 2048
    room = await sync_to_async(room_factory)(name="Plain")
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=send("hello"))
    await receive_until(tab, reply_finished)
    await sync_to_async(Room.objects.filter(pk=room.pk).update)(max_reply_tokens=64)
    await tab.send_to(text_data=action("regenerate"))
    await receive_until(tab, reply_finished)
    first, second = model.wait_for_requests(2)
    assert first["max_tokens"] == 2048
    assert second["max_tokens"] == 64


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_200_message_room_is_fitted_to_its_window(room_factory, connect, model):
    room, rows = await a_long_room(
        room_factory, messages=200, context_tokens=1500, max_reply_tokens=500
    )
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=send("What is the newest question?"))
    final = await receive_until(tab, reply_finished)
    (request,) = model.wait_for_requests(1)
    sent = request["messages"]
    assert request["max_tokens"] == 500
    assert sent[0] == {"role": "system", "content": "You are the room's careful assistant."}
    assert sent[-1] == {"role": "user", "content": "What is the newest question?"}
    # The prompt and the reply ceiling fit the window.
    estimate = tokens_estimate_messages(messages=sent)
    assert estimate + 500 <= 1500
    assert 10 < len(sent) < 200, "the oldest messages were left out, not all of them"
    # The newest messages, in order: the oldest were dropped first.
    kept = [m["content"] for m in sent[1:-1]]
    assert kept == [row.content for row in rows[len(rows) - len(kept) :]]
    # The model server counts words: the estimate is 1.47x its count here (README).
    reply = (await sync_to_async(list)(room.messages.order_by("-pk")[:1]))[0]
    assert 1.4 <= estimate / reply.prompt_tokens <= 1.55, (estimate, reply.prompt_tokens)

    # The page marks where the next request's memory begins (the question and its
    # answer moved it on), as the reply's final state told the open tab.
    start = await sync_to_async(limits.context_start)(room=room)
    assert start is not None and start >= rows[len(rows) - len(kept)].pk
    assert f'id="context-start" hidden data-message="{start}"' in final[-1]
    html = await sync_to_async(page_html)(room, room.owner)
    between = html.split(f'<p class="context-divider" role="note">{DIVIDER}</p>')[1]
    assert between.split("<article", 1)[1].startswith(f' id="message-{start}"')


def page_html(room: Room, user) -> str:
    browser = Client()
    browser.force_login(user)
    return browser.get(f"/chat/{room.pk}/").content.decode()


@pytest.mark.django_db
def test_a_room_that_fits_its_window_shows_no_divider(client, room_factory, message_factory):
    room = room_factory()
    message_factory(room, "short")
    html = client.get(room.get_absolute_url()).content.decode()
    assert 'class="context-divider"' not in html
    assert 'id="context-start" hidden data-message=""' in html
    assert limits.context_start(room=room) is None


@pytest.mark.django_db
def test_the_divider_sits_before_the_oldest_message_sent(client, room_factory, message_factory):
    room = room_factory(context_tokens=600, max_reply_tokens=100)
    rows = [message_factory(room, f"message {i} " + "word " * 40) for i in range(30)]
    start = limits.context_start(room=room)
    assert start is not None and start != rows[0].pk
    html = client.get(room.get_absolute_url()).content.decode()
    divider = html.index('<p class="context-divider"')
    assert html.index(f'id="message-{start}"') > divider > html.index(f'id="message-{start - 1}"')
    # It agrees with what a request would carry.
    turns = [turn("user", row.content) for row in rows]
    fitted = limits.context_fit(turns=turns, budget=limits.limits_prompt_budget(room=room))
    assert len(fitted) == len([row for row in rows if row.pk >= start])


@pytest.mark.django_db
def test_the_divider_is_walked_once_per_change_to_the_room(room_factory, message_factory):
    room = room_factory(context_tokens=600, max_reply_tokens=100)
    rows = [message_factory(room, f"message {i} " + "word " * 40) for i in range(30)]
    start = limits.context_start(room=room)
    # Another page open reads no message: the walk is kept for this version.
    with CaptureQueriesContext(connection) as queries:
        assert limits.context_start(room=room, shared=False) == start
    assert len(queries) == 0
    # A new message is a change to the room (its version): the divider moves on.
    newest = message_factory(room, "the newest " + "word " * 40)
    room.version = room_version_bump(room_id=room.pk, message_ids=[newest.pk])
    moved = limits.context_start(room=room)
    assert moved is not None and moved > start
    # So does a smaller window, and a member (whose author lines count).
    room.context_tokens = 400
    assert limits.context_start(room=room) > moved
    room.context_tokens = 600
    fitted = limits.context_fit(
        turns=[turn("user", row.content) for row in [*rows, newest]],
        budget=limits.limits_prompt_budget(room=room),
    )
    assert moved == [*rows, newest][-len(fitted)].pk
    room.members.add(get_user_model().objects.create(username="member"))
    assert limits.context_start(room=room) > moved


@pytest.mark.django_db
def test_a_reservation_counts_what_the_request_sends(room_factory, message_factory):
    room = room_factory(context_tokens=600, max_reply_tokens=100)
    rows = [message_factory(room, f"message {i} " + "word " * 40) for i in range(30)]
    reply = Message.objects.create(room=room, role="assistant", status="streaming")
    # The window is full: the prompt's share of it, all of it.
    assert budgets.prompt_estimate(room=room, reply=reply) == 500
    # A short room: every message, as a request would carry them, author lines and all.
    Message.objects.filter(pk__in=[row.pk for row in rows[:-2]]).delete()
    author = get_user_model().objects.create(username="minji", first_name="Minji", last_name="Kim")
    room.members.add(author)
    message_factory(room, "@ai and one from minji", author=author)
    reply.delete()  # one streaming reply per room
    reply = Message.objects.create(room=room, role="assistant", status="streaming")
    sent = selectors.room_history(room=room, before=reply)
    assert '[author: "Minji Kim"]\nand one from minji' in sent[-1]["content"]
    assert budgets.prompt_estimate(room=room, reply=reply) == tokens_estimate_messages(
        messages=sent
    )


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_reply_cut_at_the_ceiling_says_so_and_continue_carries_it_on(
    room_factory, connect, model
):
    room = await sync_to_async(room_factory)(name="Short replies", max_reply_tokens=5)
    model.queue(Reply("one two three four five six seven eight"), Reply("six seven eight"))
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=send("count"))
    final = messages_in((await receive_until(tab, reply_finished))[-1])[-1]
    assert final.status == "complete"
    assert LENGTH_NOTE in final.html
    assert 'name="action" value="continue"' in final.html
    reply = await Message.objects.aget(pk=final.pk)
    assert (reply.content, reply.length_limited) == ("one two three four five ", True)
    # A fresh page load shows what the live tab shows.
    html = await sync_to_async(page_html)(room, room.owner)
    assert LENGTH_NOTE in html and 'value="continue"' in html

    await tab.send_to(text_data=action("continue", message=str(final.pk)))
    done = messages_in((await receive_until(tab, reply_finished))[-1])[-1]
    assert done.pk == final.pk and done.status == "complete"
    assert LENGTH_NOTE not in done.html
    _, carried_on = model.wait_for_requests(2)
    assert carried_on["max_tokens"] == 5
    assert carried_on["messages"][-2] == {
        "role": "assistant",
        "content": "one two three four five ",
    }
    reply = await Message.objects.aget(pk=final.pk)
    assert reply.content == "one two three four five six seven eight"
    assert reply.length_limited is False
    html = await sync_to_async(page_html)(room, room.owner)
    assert LENGTH_NOTE not in html
