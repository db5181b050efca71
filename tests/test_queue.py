"""The AI's queue and addressed mode, over the room websocket (in process, real Redis)."""

import pytest
from asgiref.sync import sync_to_async

from chat import selectors
from chat.models import Message, Room
from chat.turns import watchdog
from tests.conftest import replies_finished
from tests.fakeopenai import Reply
from tests.wsutil import action, messages_in, receive_until, reply_finished, send

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

SLOW = Reply(chunks=tuple(f"s{i} " for i in range(60)), tokens_per_second=40)


@sync_to_async
def rows(room) -> list[tuple[str, str, str]]:
    return list(room.messages.order_by("pk").values_list("role", "status", "content"))


@sync_to_async
def queued(room) -> list[tuple[int, str]]:
    return list(room.messages.filter(status="queued").order_by("pk").values_list("pk", "content"))


def streaming_shown(frame: str) -> bool:
    return any(m.role == "assistant" and m.status == "streaming" for m in messages_in(frame))


def queue_shows(*texts: str):
    return lambda frame: 'id="queue"' in frame and all(text in frame for text in texts)


async def all_replies_finished() -> None:
    # A reply that ends starts the next question's, so wait until none is left.
    for _ in range(10):
        await replies_finished(within=20)
        if not await Message.objects.filter(status="streaming").aexists():
            return


@pytest.fixture
def room(room_factory, bob):
    room = room_factory(name="Shared")
    room.members.add(bob)
    return room


async def test_questions_sent_mid_reply_are_answered_after_it_in_order(room, bob, connect, model):
    model.queue(SLOW, Reply("Answer two."), Reply("Answer three."))
    alice_tab = await connect(f"/ws/chat/{room.pk}/")
    bob_tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)
    await alice_tab.send_to(text_data=send("first"))
    await receive_until(bob_tab, streaming_shown)

    await bob_tab.send_to(text_data=send("second"))
    await receive_until(alice_tab, queue_shows("second"))
    await alice_tab.send_to(text_data=send("third"))
    # Every tab shows both waiting, with their positions.
    frames = await receive_until(alice_tab, queue_shows("second", "third"))
    assert frames[-1].index("Queued · 1") < frames[-1].index("second")
    assert frames[-1].index("Queued · 2") < frames[-1].index("third")
    await receive_until(bob_tab, queue_shows("second", "third"))

    await all_replies_finished()
    assert await rows(room) == [
        ("user", "complete", "first"),
        ("assistant", "complete", "".join(SLOW.chunks)),
        ("user", "complete", "second"),
        ("assistant", "complete", "Answer two."),
        ("user", "complete", "third"),
        ("assistant", "complete", "Answer three."),
    ]
    # Never interleaved: each request saw the previous answer complete.
    second_request, third_request = model.requests[1:]
    assert second_request["messages"][-2]["content"] == "".join(SLOW.chunks)
    assert third_request["messages"][-2]["content"] == "Answer two."


async def test_the_author_cancels_a_waiting_question_and_no_one_else_can(room, bob, connect, model):
    model.queue(SLOW)
    alice_tab = await connect(f"/ws/chat/{room.pk}/")
    bob_tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)
    await alice_tab.send_to(text_data=send("first"))
    await receive_until(alice_tab, streaming_shown)
    await bob_tab.send_to(text_data=send("never mind"))
    await receive_until(alice_tab, queue_shows("never mind"))
    ((waiting_id, _),) = await queued(room)

    await alice_tab.send_to(text_data=action("cancel", message=waiting_id))
    await receive_until(alice_tab, lambda f: "That question is not waiting any more." in f)
    assert await queued(room) == [(waiting_id, "never mind")]

    await bob_tab.send_to(text_data=action("cancel", message=str(waiting_id)))
    emptied = await receive_until(alice_tab, lambda f: 'id="queue"' in f)
    assert "never mind" not in emptied[-1]
    await all_replies_finished()
    assert [content for _, _, content in await rows(room)] == ["first", "".join(SLOW.chunks)]
    assert len(model.requests) == 1


async def test_beyond_the_queue_limit_the_sender_keeps_their_text_and_nothing_is_saved(
    room, connect, model, settings
):
    settings.CHAT_QUEUE_LIMIT = 1
    model.queue(SLOW)
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=send("first"))
    await receive_until(tab, streaming_shown)
    await tab.send_to(text_data=send("second"))
    await receive_until(tab, queue_shows("second"))

    await tab.send_to(text_data=send("one too many"))
    refusal = await receive_until(tab, lambda f: "1 question is already waiting for the AI" in f)
    assert 'data-outcome="refused"' in refusal[-1], "the page puts the text back"
    await all_replies_finished()
    assert "one too many" not in [content for _, _, content in await rows(room)]


async def test_stop_ends_the_current_reply_and_the_next_question_starts(room, connect, model):
    model.queue(Reply(chunks=tuple(f"w{i} " for i in range(400)), tokens_per_second=40))
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=send("long one"))
    frames = await receive_until(tab, streaming_shown)
    reply_id = next(m.pk for m in messages_in(frames[-1]) if m.role == "assistant")
    await tab.send_to(text_data=send("next one"))
    await receive_until(tab, queue_shows("next one"))

    await tab.send_to(text_data=action("stop", message=reply_id))
    await all_replies_finished()
    statuses = [(status, content) for _, status, content in await rows(room)]
    assert statuses[1][0] == "stopped"
    assert statuses[2:] == [
        ("complete", "next one"),
        ("complete", 'Echo: [author: "alice"]\nnext one'),
    ]


async def test_regenerate_waits_until_the_queue_is_empty(room, connect, model):
    model.queue(SLOW)
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=send("first"))
    await receive_until(tab, streaming_shown)
    await tab.send_to(text_data=send("second"))
    await receive_until(tab, queue_shows("second"))
    await tab.send_to(text_data=action("regenerate"))
    await receive_until(tab, lambda f: "Wait for the current reply to finish" in f)

    await all_replies_finished()
    model.queue(Reply("Again."))
    await tab.send_to(text_data=action("regenerate"))
    await receive_until(tab, lambda f: any(m.text == "Again." for m in messages_in(f)))
    await all_replies_finished()
    assert (await rows(room))[-2:] == [
        ("user", "complete", "second"),
        ("assistant", "complete", "Again."),
    ]


async def test_a_waiting_question_survives_until_the_room_is_free(room, user, model):
    """After a restart the database still holds the queue; the sweep starts it."""
    await Message.objects.acreate(room=room, author=user, role="user", content="asked before")
    await Message.objects.acreate(room=room, role="assistant", content="answered")
    await Message.objects.acreate(
        room=room, author=user, role="user", content="still waiting", status="queued"
    )
    busy = await Room.objects.acreate(owner=user, name="Busy")
    await Message.objects.acreate(room=busy, author=user, role="user", content="q", status="queued")
    await Message.objects.acreate(room=busy, role="assistant", status="streaming")

    assert await watchdog.queues_resume() == 1, "only the room with no reply streaming starts"
    await replies_finished()
    assert (await rows(room))[-2:] == [
        ("user", "complete", "still waiting"),
        ("assistant", "complete", 'Echo: [author: "alice"]\nstill waiting'),
    ]
    assert await watchdog.queues_resume() == 0


async def test_in_mentioned_mode_only_addressed_messages_call_the_model(room, bob, connect, model):
    await Room.objects.filter(pk=room.pk).aupdate(ai_answers="mentioned")
    alice_tab = await connect(f"/ws/chat/{room.pk}/")
    bob_tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)
    await alice_tab.send_to(text_data=send("Lunch at noon?"))
    await receive_until(bob_tab, lambda f: "Lunch at noon?" in f)
    await bob_tab.send_to(text_data=send("Sure. Where?"))
    await receive_until(alice_tab, lambda f: "Sure. Where?" in f)
    assert model.requests == []

    await bob_tab.send_to(text_data=send("@AI, where do people eat near Gwanghwamun?"))
    await receive_until(bob_tab, reply_finished)
    await all_replies_finished()
    (request,) = model.requests
    users = [t["content"] for t in request["messages"] if t["role"] == "user"]
    # The whole conversation goes along, each turn named; the mention is taken off.
    assert users == [
        '[author: "alice"]\nLunch at noon?',
        '[author: "bob"]\nSure. Where?',
        '[author: "bob"]\nwhere do people eat near Gwanghwamun?',
    ]
    assert "This room is shared" in request["messages"][0]["content"]
    assert [role for role, _, _ in await rows(room)] == ["user", "user", "user", "assistant"]


@pytest.mark.parametrize(
    ("content", "addressed"),
    [
        ("@ai hello", True),
        ("  @Ai: hello", True),
        ("!퇴직금의 소득 구분은?", True),
        ("@aidan, hello", False),
        ("hello @ai", False),
        ("hello", False),
    ],
)
async def test_what_counts_as_addressed(room, content, addressed):
    room.ai_answers = "mentioned"
    assert selectors.message_addressed(room=room, content=content) is addressed
    room.ai_answers = "every"
    assert selectors.message_addressed(room=room, content=content) is True
