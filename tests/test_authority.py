"""Authority and settings read at the moment of each action, over the room websocket
(chat.authority, chat.turns.claims): in process, against a real Redis."""

import json
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from chat import authority, services
from chat.models import Message
from tests.conftest import replies_finished
from tests.fakeopenai import Reply
from tests.wsutil import action, messages_in, receive_until, reply_finished, send

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@sync_to_async
def rows(room) -> list[tuple[int, str, str, str]]:
    return list(room.messages.order_by("pk").values_list("pk", "role", "status", "content"))


@pytest.fixture
def room(room_factory):
    return room_factory(name="Shared")


@pytest.fixture
def bob(room, user_factory):
    bob = user_factory("bob")
    room.members.add(bob)
    return bob


async def closed_with(tab) -> int:
    output = await tab.receive_output(timeout=5)
    while output["type"] == "websocket.send":
        output = await tab.receive_output(timeout=5)
    assert output["type"] == "websocket.close", output
    return output["code"]


async def lose_membership(room, bob) -> None:
    # As the admin's form does it: no broadcast tells the open tabs.
    await room.members.aremove(bob)


async def deactivate(room, bob) -> None:
    bob.is_active = False
    await bob.asave()


async def change_password(room, bob) -> None:
    await sync_to_async(bob.set_password)("another-horse-battery-7")
    await bob.asave()


async def log_out(room, bob) -> None:
    await Session.objects.all().adelete()


@pytest.mark.parametrize(
    ("lose", "code"),
    [(lose_membership, 4403), (deactivate, 4401), (change_password, 4401), (log_out, 4401)],
)
@pytest.mark.parametrize(
    "frame",
    [
        send("still here?"),
        action("typing"),
        action("regenerate"),
        action("sync", after=0),
        json.dumps({"action": "edit", "message": 1, "content": "changed"}),
    ],
)
async def test_a_socket_that_lost_its_authority_is_closed_on_its_next_frame(
    room, bob, connect, model, lose, code, frame
):
    await Message.objects.acreate(room=room, author=bob, role="user", content="bob's")
    tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)
    before = await rows(room)

    await lose(room, bob)
    await tab.send_to(text_data=frame)

    assert await closed_with(tab) == code
    assert await rows(room) == before, "nothing it sent is saved"
    assert model.requests == []


async def test_stop_cancel_edit_and_continue_of_someone_who_just_lost_the_room_change_nothing(
    room, bob, connect, model
):
    model.queue(Reply("slow " * 60, tokens_per_second=30))
    alice_tab = await connect(f"/ws/chat/{room.pk}/")
    bob_tabs = [await connect(f"/ws/chat/{room.pk}/", as_user=bob) for _ in range(4)]
    await alice_tab.send_to(text_data=send("alice asks"))
    frames = await receive_until(
        alice_tab, lambda f: any(m.role == "assistant" for m in messages_in(f))
    )
    reply = [m for f in frames for m in messages_in(f) if m.role == "assistant"][-1]
    queued = await Message.objects.acreate(
        room=room, author=bob, role="user", content="bob waits", status="queued"
    )
    await lose_membership(room, bob)
    frames = [
        action("stop", message=reply.pk),
        action("cancel", message=queued.pk),
        json.dumps({"action": "edit", "message": queued.pk, "content": "x"}),
        action("continue", message=reply.pk),
    ]
    for tab, frame in zip(bob_tabs, frames, strict=True):
        await tab.send_to(text_data=frame)
        assert await closed_with(tab) == 4403

    final = [m for m in messages_in((await receive_until(alice_tab, reply_finished))[-1])][-1]
    assert (final.pk, final.status) == (reply.pk, "complete"), "the Stop was refused"
    # Neither cancelled nor edited: asked before bob lost the room, it is answered next.
    await receive_until(alice_tab, lambda f: "bob waits" in f)
    await replies_finished()
    assert [content for _pk, _role, _status, content in await rows(room)][-2] == "bob waits"


async def test_controls_naming_another_rooms_message_are_refused_and_change_nothing(
    room, room_factory, connect, model
):
    other = await sync_to_async(room_factory)(name="Other")
    question = await Message.objects.acreate(room=other, role="user", content="mine")
    stopped = await Message.objects.acreate(
        room=other, role="assistant", status="stopped", content="half"
    )
    # Ownerless and just saved: the watchdog leaves it, and the queue waits behind it.
    streaming = await Message.objects.acreate(room=other, role="assistant", status="streaming")
    waiting = await Message.objects.acreate(
        room=other, role="user", content="waiting", status="queued"
    )
    before = await rows(other)
    tab = await connect(f"/ws/chat/{room.pk}/")
    for frame, notice in [
        (action("stop", message=streaming.pk), "That reply is not being written any more."),
        (action("cancel", message=waiting.pk), "That question is not waiting any more."),
        (action("continue", message=stopped.pk), "can be continued"),
        (
            json.dumps({"action": "edit", "message": question.pk, "content": "x"}),
            "You can edit only your own messages.",
        ),
    ]:
        await tab.send_to(text_data=frame)
        answer = await tab.receive_from()
        assert notice in answer.replace("&#x27;", "'"), answer
    assert await rows(other) == before
    assert model.requests == []


async def test_an_open_tab_follows_the_switch_to_only_at_ai(room, bob, connect, model):
    owner_tab = await connect(f"/ws/chat/{room.pk}/")
    bob_tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)
    room.ai_answers = "mentioned"
    await sync_to_async(services.room_update)(
        room=room, name=room.name, system_prompt=room.system_prompt, ai_answers="mentioned"
    )
    header = await receive_until(owner_tab, lambda f: 'id="room-title"' in f)
    assert "The AI answers only messages starting with @ai or !" in header[-1]

    await bob_tab.send_to(text_data=send("just talking"))
    await receive_until(bob_tab, lambda f: "just talking" in f)
    assert await bob_tab.receive_nothing(timeout=0.5), "no reply follows"
    assert [role for _pk, role, _s, _c in await rows(room)] == ["user"]
    assert model.requests == [], "a plain message does not call the AI in"

    model.queue(Reply("Called in."))
    await bob_tab.send_to(text_data=send("@ai what now?"))
    frames = await receive_until(bob_tab, reply_finished)
    assert [m for m in messages_in(frames[-1]) if m.role == "assistant"][-1].text == "Called in."
    assert len(model.requests) == 1


async def test_editing_a_people_message_in_an_only_at_ai_room_does_not_call_the_ai(
    room, bob, connect, model
):
    room.ai_answers = "mentioned"
    await room.asave()
    mine = await Message.objects.acreate(room=room, author=bob, role="user", content="hi all")
    tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)

    await tab.send_to(
        text_data=json.dumps({"action": "edit", "message": mine.pk, "content": "hi everyone"})
    )
    (shown,) = messages_in(await tab.receive_from())
    assert (shown.pk, shown.text) == (mine.pk, "hi everyone")
    assert await rows(room) == [(mine.pk, "user", "complete", "hi everyone")]
    assert model.requests == []

    model.queue(Reply("Now I answer."))
    await tab.send_to(
        text_data=json.dumps({"action": "edit", "message": mine.pk, "content": "@ai hi"})
    )
    frames = await receive_until(tab, reply_finished)
    assert [m for m in messages_in(frames[-1]) if m.role == "assistant"][-1].text == "Now I answer."


def session_of(user) -> str:
    browser = Client()
    browser.force_login(user)
    return browser.cookies["sessionid"].value


async def test_a_frame_s_check_is_one_query_and_a_lost_session_password_or_room_fails_it(
    room_factory, user_factory, django_assert_num_queries
):
    await sync_to_async(checks)(room_factory, user_factory, django_assert_num_queries)


def checks(room_factory, user_factory, django_assert_num_queries) -> None:
    room = room_factory(name="Checked")
    bob = user_factory("bob")
    room.members.add(bob)
    key = session_of(bob)
    check = dict(session_key=key, user_id=bob.pk, room_id=room.pk)
    with django_assert_num_queries(1):
        assert authority.socket_check(**check) == room
    # Another user's session, or none, vouches for nobody else.
    with pytest.raises(authority.SignedOut):
        authority.socket_check(**{**check, "session_key": session_of(room.owner)})
    with pytest.raises(authority.SignedOut):
        authority.socket_check(**{**check, "session_key": None})
    # A changed password ends the session on its next frame, as it does a page's.
    bob.set_password("another-horse-battery-7")
    bob.save()
    with pytest.raises(authority.SignedOut):
        authority.socket_check(**check)
    check["session_key"] = session_of(bob)
    assert authority.socket_check(**check) == room
    Session.objects.filter(session_key=check["session_key"]).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(authority.SignedOut):
        authority.socket_check(**check)
    check["session_key"] = session_of(bob)
    room.members.remove(bob)
    with pytest.raises(authority.NotMember):
        authority.socket_check(**check)
    room.delete()
    with pytest.raises(authority.RoomGone):
        authority.socket_check(**check)
